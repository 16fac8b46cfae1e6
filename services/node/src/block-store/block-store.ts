import type { CID } from '@mycel/core'

export interface BlockStoreStats {
  blocks: number
  bytes: number
}

/** Whether the store can take writes and serve reads now (readiness follows it). */
export interface BlockStoreHealth {
  ok: boolean
  /** Why not, for /readyz and the log. */
  reason?: string
}

/**
 * Storage-engine figures for metrics (RocksDB properties of the block column family); names are
 * the metric suffixes.
 */
export interface EngineStats {
  estimatedKeys: number
  liveSstBytes: number
  totalSstBytes: number
  memtableBytes: number
  pendingCompactionBytes: number
  runningCompactions: number
  runningFlushes: number
  backgroundErrors: number
  writeStopped: number
}

/** One group-commit batch, as the store reports it to its observer (metrics). */
export interface WriteBatchReport {
  ops: number
  /** Blocks that were new to the store (puts of blocks already held are not written again). */
  newBlocks: number
  existingBlocks: number
  bytes: number
  seconds: number
  ok: boolean
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
  /** Current health, from the last writes and self-checks. */
  health(): BlockStoreHealth
  /**
   * Exercises the store (a small synced write and its read-back when no write succeeded
   * recently) and tries to recover a failed one; resolves with the resulting health.
   */
  selfCheck(): Promise<BlockStoreHealth>
  /** Storage-engine figures, when the implementation has an engine worth measuring. */
  engineStats?(): EngineStats | undefined
  close(): Promise<void>
}
