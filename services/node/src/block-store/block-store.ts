import type { CID, DurabilityPolicy } from '@mycel/core'

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

/** What a node keeps about a block besides its bytes. */
export interface BlockRecord {
  /** Storage key: the block's multihash (`blockKey`). */
  key: Uint8Array
  size: number
  /** Its durability record; undefined for blocks stored before records existed (node default). */
  policy?: DurabilityPolicy
}

export interface ListOptions {
  /** Start after this key; from the first key when absent. */
  after?: Uint8Array
  limit: number
}

/**
 * Content-addressed block storage on one node. Implementations verify every block against its
 * CID on write and on read, so a corrupt copy is never returned.
 */
export interface BlockStore {
  /**
   * Stores a verified block with its durability record; resolves once it is durable.
   * HashMismatchError if it does not match. A block already held keeps its bytes and takes the
   * stronger of the two records. The store may take ownership of `bytes` (RocksBlockStore moves
   * them to its writer thread).
   */
  put(cid: CID, bytes: Uint8Array, policy?: DurabilityPolicy): Promise<void>
  /** The verified block. BlockNotFoundError, or BlockCorruptError (the bad copy is dropped). */
  get(cid: CID): Promise<Uint8Array>
  /** For each CID, whether the block is held. */
  has(cids: readonly CID[]): Promise<boolean[]>
  /** For each CID, the block's record, or undefined when it is not held. Reads no block bytes. */
  records(cids: readonly CID[]): Promise<Array<BlockRecord | undefined>>
  /** Records in key order, a page at a time (a cursor for scans that survive restarts). */
  list(options: ListOptions): Promise<BlockRecord[]>
  /** Raises a held block's record to `policy` if that is stronger; nothing if it is not held. */
  upgradePolicy(cid: CID, policy: DurabilityPolicy): Promise<void>
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

/**
 * An entry of the repair queue: a block (or, with `code`, an erasure-coded block this node holds
 * shards of) and how many more losses it was known to survive when queued, plus one: surviving
 * copies for a replicated block, shards found minus K plus one for a coded one.
 */
export interface RepairQueueEntry {
  copies: number
  key: Uint8Array
  /** The block's code, for an entry about its shards. */
  code?: { k: number; m: number }
}

/**
 * Node-level state kept beside the blocks (same database, so it survives restarts with them):
 * small named records (scan cursors, pass figures) and the repair queue, ordered by
 * (copies, key) so that the blocks with the fewest surviving copies come out first.
 * Writes here are not synced on their own: losing the last few after a crash only repeats work.
 */
export interface NodeStateStore {
  getState(name: string): Promise<Uint8Array | undefined>
  setState(name: string, value: Uint8Array | undefined): Promise<void>
  enqueueRepairs(entries: readonly RepairQueueEntry[]): Promise<void>
  /** Up to `limit` entries in (copies, key) order, after `after` when given. */
  nextRepairs(after: RepairQueueEntry | undefined, limit: number): Promise<RepairQueueEntry[]>
  dequeueRepairs(entries: readonly RepairQueueEntry[]): Promise<void>
  repairQueueLength(): number
}

const ENTRY_BLOCK = 0
const ENTRY_SHARDS = 1

/**
 * Queue key: copies (one byte, saturated), then the kind (0 block, 1 shards with K and M), then
 * the block key, so byte order is risk order over blocks and coded blocks alike.
 */
export function repairQueueKey(entry: RepairQueueEntry): Buffer {
  const copies = Math.min(255, Math.max(0, entry.copies))
  const head =
    entry.code === undefined
      ? Buffer.of(copies, ENTRY_BLOCK)
      : Buffer.of(copies, ENTRY_SHARDS, entry.code.k, entry.code.m)
  return Buffer.concat([head, entry.key])
}

export function repairQueueEntry(key: Uint8Array): RepairQueueEntry {
  const copies = key[0] as number
  if (key[1] === ENTRY_SHARDS) {
    return {
      copies,
      key: new Uint8Array(key.subarray(4)),
      code: { k: key[2] as number, m: key[3] as number },
    }
  }
  // Entries queued before shards shared the queue had no kind byte: the block key follows copies.
  const from = key[1] === ENTRY_BLOCK ? 2 : 1
  return { copies, key: new Uint8Array(key.subarray(from)) }
}
