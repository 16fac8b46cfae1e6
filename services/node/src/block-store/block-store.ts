import type { CID } from '@mycel/core'

export interface BlockStoreStats {
  blocks: number
  bytes: number
}

/**
 * Content-addressed block storage on one node. Implementations verify every block against its
 * CID on write and on read, so a corrupt copy is never returned.
 */
export interface BlockStore {
  /**
   * Stores a verified block; resolves once it is durable. HashMismatchError if it does not match.
   * The store may take ownership of `bytes` (RocksBlockStore moves them to its writer thread).
   */
  put(cid: CID, bytes: Uint8Array): Promise<void>
  /** The verified block. BlockNotFoundError, or BlockCorruptError (the bad copy is dropped). */
  get(cid: CID): Promise<Uint8Array>
  /** For each CID, whether the block is held. */
  has(cids: readonly CID[]): Promise<boolean[]>
  /** Removes the block; true when it was held. */
  delete(cid: CID): Promise<boolean>
  stats(): BlockStoreStats
  close(): Promise<void>
}
