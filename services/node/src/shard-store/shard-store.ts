import type { CID, Shard } from '@mycel/core'

/** Which shard of a block: the code (K+M) and the index in it. */
export interface ShardRef {
  k: number
  m: number
  index: number
}

export interface ShardStoreStats {
  shards: number
  /** Stored bytes, headers included. */
  bytes: number
}

export interface ShardFilter {
  /** Only shards of this code (0 or absent: any). */
  k?: number
  m?: number
  /** Only these indices (empty or absent: all). */
  indices?: readonly number[]
}

/** A stored shard as scrub and repair passes see it. */
export interface StoredShardEntry extends ShardRef {
  /** The storage key (multihash, K, M, index), to resume a pass after it. */
  key: Buffer
  multihash: Uint8Array
  /** Stored bytes. */
  size: number
}

/**
 * Erasure-coded shards held by one node, keyed by (block multihash, K, M, index). Shards are
 * verified (checksum over header and data, header naming the block) when written and when read;
 * one that fails on read is dropped, so a corrupt shard is never served and repair rebuilds it.
 */
export interface ShardStore {
  /** Verifies and stores an encoded shard of block `cid`; resolves once durable. */
  put(cid: CID, shard: Uint8Array): Promise<void>
  /** The verified shards of a block that match `filter`, and those that failed (now dropped). */
  get(cid: CID, filter?: ShardFilter): Promise<{ shards: Shard[]; corrupt: ShardRef[] }>
  /** For each block, which shards are held, from the index (nothing read or verified). */
  list(cids: readonly CID[]): Promise<ShardRef[][]>
  /** Removes shards of a block; resolves to how many were held. */
  delete(cid: CID, refs: readonly ShardRef[]): Promise<number>
  /** Up to `limit` stored shards in key order after `after`, for scrub and repair passes. */
  scan(after: Buffer | undefined, limit: number): Promise<StoredShardEntry[]>
  /** Re-verifies one stored shard; drops it when it fails. False only when it failed. */
  verify(entry: StoredShardEntry): Promise<boolean>
  stats(): ShardStoreStats
  close(): Promise<void>
}
