import * as dagPb from '@ipld/dag-pb'
import { type CID, CODEC_DAG_PB, CODEC_RAW, HASH_IDENTITY } from '@mycel/core'
import { EntryType } from '@mycel/proto'
import { UnixFS } from 'ipfs-unixfs'

export interface EntryFacts {
  type: EntryType
  /** File size (files, raw blocks, symlinks); 0 otherwise. */
  size: number
  /** The block plus its links' cumulative sizes (Kubo's CumulativeSize). */
  dagSize: number
  links: number
}

/** What a block is, from its bytes alone. */
export function entryFacts(cid: CID, bytes: Uint8Array): EntryFacts {
  if (cid.multihash.code === HASH_IDENTITY) {
    return {
      type: EntryType.ENTRY_TYPE_IDENTITY,
      size: bytes.byteLength,
      dagSize: bytes.byteLength,
      links: 0,
    }
  }
  if (cid.code === CODEC_RAW) {
    return { type: EntryType.ENTRY_TYPE_RAW, size: bytes.byteLength, dagSize: bytes.byteLength, links: 0 }
  }
  if (cid.code !== CODEC_DAG_PB) {
    return { type: EntryType.ENTRY_TYPE_OBJECT, size: 0, dagSize: bytes.byteLength, links: 0 }
  }
  const node = dagPb.decode(bytes)
  const dagSize = node.Links.reduce((n, l) => n + (l.Tsize ?? 0), bytes.byteLength)
  const links = node.Links.length
  if (node.Data === undefined) return { type: EntryType.ENTRY_TYPE_OBJECT, size: 0, dagSize, links }
  const unixfs = UnixFS.unmarshal(node.Data)
  switch (unixfs.type) {
    case 'file':
    case 'raw':
      return { type: EntryType.ENTRY_TYPE_FILE, size: Number(unixfs.fileSize()), dagSize, links }
    case 'directory':
    case 'hamt-sharded-directory':
      return { type: EntryType.ENTRY_TYPE_DIRECTORY, size: 0, dagSize, links }
    case 'symlink':
      return { type: EntryType.ENTRY_TYPE_SYMLINK, size: unixfs.data?.byteLength ?? 0, dagSize, links }
    default:
      return { type: EntryType.ENTRY_TYPE_OBJECT, size: 0, dagSize, links }
  }
}
