import { createHash } from 'node:crypto'
import { bases } from 'multiformats/basics'
import { CID } from 'multiformats/cid'
import { decode as decodeDigest } from 'multiformats/hashes/digest'
import { MAX_BLOCK_BYTES } from '../constants.js'
import { BlockTooLargeError, HashMismatchError, InvalidCidError, UnsupportedHashError } from '../errors.js'

export { CID }

/** Multicodec codes Mycel handles when it reads content. */
export const CODEC_RAW = 0x55
export const CODEC_DAG_PB = 0x70
export const HASH_SHA2_256 = 0x12
export const HASH_SHA2_512 = 0x13
export const HASH_IDENTITY = 0x00

// Every multibase in multiformats' basics, so a CID copied from any IPFS tool parses. Chosen by
// prefix here: multiformats' composed decoder reads one UTF-16 unit, so it misses base256emoji's 🚀.
const multibaseDecoder = {
  decode(text: string): Uint8Array {
    const base = Object.values(bases).find((b) => text.startsWith(b.prefix))
    if (base === undefined)
      throw new Error(`unknown multibase prefix "${String.fromCodePoint(text.codePointAt(0) ?? 0)}"`)
    return base.decoder.decode(text)
  },
} as unknown as Parameters<typeof CID.parse>[1]

/** Parses a CID in any multibase (CIDv0 base58 too). Throws InvalidCidError with the reason. */
export function parseCid(input: string): CID {
  const text = input.trim()
  if (text.length === 0) throw new InvalidCidError(input, 'empty')
  try {
    return text.startsWith('Qm') || text.startsWith('1')
      ? CID.parse(text)
      : (CID.parse(text, multibaseDecoder) as CID)
  } catch (err) {
    throw new InvalidCidError(input, err instanceof Error ? err.message : String(err))
  }
}

/** Decodes a CID from its binary form (as carried in gRPC messages). */
export function decodeCid(bytes: Uint8Array): CID {
  try {
    return CID.decode(bytes) as CID
  } catch (err) {
    throw new InvalidCidError(
      Buffer.from(bytes).toString('hex'),
      err instanceof Error ? err.message : String(err),
    )
  }
}

/** The storage key of a block: its multihash, so CIDv0/v1 and any codec share one copy. */
export function blockKey(cid: CID): Uint8Array {
  return cid.multihash.bytes
}

/**
 * A CID that addresses the block stored under `key` (a multihash): CIDv1 raw. Nodes store and
 * verify by multihash, so any codec would do; raw is what a block without its DAG context is.
 */
export function cidOfKey(key: Uint8Array): CID {
  try {
    return CID.createV1(CODEC_RAW, decodeDigest(key)) as CID
  } catch (err) {
    throw new InvalidCidError(
      Buffer.from(key).toString('hex'),
      `not a multihash: ${err instanceof Error ? err.message : String(err)}`,
    )
  }
}

function digestOf(code: number, bytes: Uint8Array): Uint8Array {
  switch (code) {
    case HASH_SHA2_256:
      return createHash('sha256').update(bytes).digest()
    case HASH_SHA2_512:
      return createHash('sha512').update(bytes).digest()
    case HASH_IDENTITY:
      return bytes
    default:
      throw new UnsupportedHashError(code)
  }
}

/** True when `bytes` hash to the CID's multihash. Throws UnsupportedHashError for other hashes. */
export function blockMatches(cid: CID, bytes: Uint8Array): boolean {
  const expected = cid.multihash.digest
  const actual = digestOf(cid.multihash.code, bytes)
  return (
    Buffer.compare(
      Buffer.from(expected),
      Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength),
    ) === 0
  )
}

/** Throws HashMismatchError unless `bytes` hash to the CID. */
export function verifyBlock(cid: CID, bytes: Uint8Array): void {
  if (!blockMatches(cid, bytes)) throw new HashMismatchError(cid.toString())
}

/** Whether Mycel can verify blocks addressed with this multihash function. */
export function isSupportedHash(code: number): boolean {
  return code === HASH_SHA2_256 || code === HASH_SHA2_512 || code === HASH_IDENTITY
}

/** What every store checks before it keeps a block: the size limit, then the hash. */
export function assertStorableBlock(cid: CID, bytes: Uint8Array): void {
  if (bytes.byteLength > MAX_BLOCK_BYTES) throw new BlockTooLargeError(bytes.byteLength, MAX_BLOCK_BYTES)
  verifyBlock(cid, bytes)
}
