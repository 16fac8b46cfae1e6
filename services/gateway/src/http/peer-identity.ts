import { generateKeyPairSync } from 'node:crypto'
import { base58btc } from 'multiformats/bases/base58'

export interface PeerIdentity {
  /** libp2p PeerID text ("12D3KooW…"): the identity multihash of the public key. */
  id: string
  /** The protobuf-encoded public key, base64, as Kubo's `id` reports it. */
  publicKey: string
}

/**
 * A libp2p-shaped identity for the gateway, so Kubo clients that parse `id` (kubo-rpc-client
 * turns ID into a PeerId) work. The gateway is stateless and speaks no libp2p, so the key is made
 * per process and its private half is never used.
 */
export function createPeerIdentity(): PeerIdentity {
  const { publicKey } = generateKeyPairSync('ed25519')
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)
  // libp2p PublicKey protobuf: field 1 KeyType = 1 (Ed25519), field 2 Data = 32 key bytes.
  const encoded = Buffer.concat([Buffer.from([0x08, 0x01, 0x12, 0x20]), raw])
  // Keys of at most 42 bytes use the identity multihash (code 0x00), as libp2p specifies.
  const multihash = Buffer.concat([Buffer.from([0x00, encoded.length]), encoded])
  return { id: base58btc.baseEncode(multihash), publicKey: encoded.toString('base64') }
}
