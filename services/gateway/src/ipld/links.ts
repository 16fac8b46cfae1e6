import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import * as dagPb from '@ipld/dag-pb'
import { CODEC_DAG_CBOR, CODEC_DAG_JSON } from '@mycel/cluster'
import { type CID, CODEC_DAG_PB, CODEC_RAW, HASH_IDENTITY, NotAFileError } from '@mycel/core'
import { UnixFS } from 'ipfs-unixfs'

// Which codecs have links and what they are (blockLinks, isLeafCodec): @mycel/cluster,
// shared with the nodes' pins. Here: what only the gateway reads (UnixFS entities, ranges, sizes).

/**
 * Links inside the "entity" of a block (trustless gateway dag-scope=entity): a UnixFS file's
 * chunks and a HAMT directory's own shards, but never a directory's children. Other codecs: none.
 */
export function entityLinksOf(cid: CID, bytes: Uint8Array): CID[] {
  if (cid.code !== CODEC_DAG_PB) return []
  const node = dagPb.decode(bytes)
  if (node.Data === undefined) return []
  let unixfs: UnixFS
  try {
    unixfs = UnixFS.unmarshal(node.Data)
  } catch {
    return []
  }
  if (unixfs.type === 'file' || unixfs.type === 'raw') return node.Links.map((l) => l.Hash as unknown as CID)
  if (unixfs.type === 'hamt-sharded-directory') {
    // A shard's sub-shard links are named by their bucket alone (hex, fixed width); entries add a name.
    const width = ((Number(unixfs.fanout ?? 256n) - 1).toString(16) || '0').length
    return node.Links.filter((l) => (l.Name ?? '').length === width).map((l) => l.Hash as unknown as CID)
  }
  return []
}

/**
 * The children of a UnixFS file node that hold bytes of [from, to] (inclusive, file offsets),
 * with the file offset each child starts at. `offset` is where this node's bytes start.
 */
export function fileLinksInRange(
  cid: CID,
  bytes: Uint8Array,
  offset: number,
  range: { from: number; to: number },
): Array<{ cid: CID; offset: number }> {
  if (cid.code !== CODEC_DAG_PB) return []
  const node = dagPb.decode(bytes)
  if (node.Data === undefined) return []
  const unixfs = UnixFS.unmarshal(node.Data)
  if (unixfs.type !== 'file' && unixfs.type !== 'raw') return []
  // A node's own data comes before its children's.
  let start = offset + (unixfs.data?.byteLength ?? 0)
  const out: Array<{ cid: CID; offset: number }> = []
  node.Links.forEach((link, i) => {
    const size = Number(unixfs.blockSizes[i] ?? 0n)
    const end = start + size - 1
    if (size > 0 && end >= range.from && start <= range.to)
      out.push({ cid: link.Hash as unknown as CID, offset: start })
    start += size
  })
  return out
}

/** The byte length of a UnixFS file or raw block, or undefined for anything else. */
export function fileSizeOf(cid: CID, bytes: Uint8Array): number | undefined {
  if (cid.code === CODEC_RAW) return bytes.byteLength
  if (cid.code !== CODEC_DAG_PB) return undefined
  const node = dagPb.decode(bytes)
  if (node.Data === undefined) return undefined
  const unixfs = UnixFS.unmarshal(node.Data)
  return unixfs.type === 'file' || unixfs.type === 'raw' ? Number(unixfs.fileSize()) : undefined
}

export function isIdentity(cid: CID): boolean {
  return cid.multihash.code === HASH_IDENTITY
}

/**
 * Throws NotAFileError (a client error) unless the block decodes under its codec, and a dag-pb
 * node's Data, when it has some, as UnixFS. Only hashes are checked when blocks are stored
 * (dag/import stores any block that matches its CID), so readers check what they decode: content
 * that cannot be read is the client's to fix (or to fetch raw), never a server error.
 */
export function assertDecodable(cid: CID, bytes: Uint8Array): void {
  try {
    switch (cid.code) {
      case CODEC_DAG_PB: {
        const node = dagPb.decode(bytes)
        if (node.Data !== undefined) UnixFS.unmarshal(node.Data)
        return
      }
      case CODEC_DAG_CBOR:
        dagCbor.decode(bytes)
        return
      case CODEC_DAG_JSON:
        dagJson.decode(bytes)
        return
      default:
        return
    }
  } catch (err) {
    throw new NotAFileError(
      `block ${cid.toString()} does not decode as ${CODEC_NAMES[cid.code]} (${(err as Error).message}); fetch its bytes with format=raw`,
    )
  }
}

const CODEC_NAMES: Record<number, string> = {
  [CODEC_DAG_PB]: 'dag-pb/UnixFS',
  [CODEC_DAG_CBOR]: 'dag-cbor',
  [CODEC_DAG_JSON]: 'dag-json',
}
