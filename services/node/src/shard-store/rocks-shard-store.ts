import {
  type CID,
  decodeShard,
  InvalidArgumentError,
  type Logger,
  parseShardKey,
  type Shard,
  StoreUnavailableError,
  shardKey,
  shardKeyRange,
} from '@mycel/core'
import { planRecordBatch, u64 } from '../block-store/counted-records.js'
import { GroupCommit } from '../block-store/group-commit.js'
import type { SharedColumn, SharedRocks } from '../block-store/rocks-block-store.js'
import type { ShardFilter, ShardRef, ShardStore, ShardStoreStats, StoredShardEntry } from './shard-store.js'

type Op =
  | {
      kind: 'put'
      key: Buffer
      bytes: Uint8Array
      resolve: (held: boolean) => void
      reject: (e: Error) => void
    }
  | { kind: 'delete'; key: Buffer; resolve: (held: boolean) => void; reject: (e: Error) => void }

const META_SHARDS = Buffer.from('stats/shards')
const META_SHARD_BYTES = Buffer.from('stats/shard-bytes')

export interface RocksShardStoreConfig {
  logger: Logger
  /** Called for every stored shard that failed verification (and was dropped), by what found it. */
  onCorrupt?: (foundBy: 'read' | 'scrub') => void
}

/**
 * Shards in the node's RocksDB beside the blocks: column `shards` (key → encoded shard, not
 * compressed: shard data is as incompressible as the blocks) and `shard-sizes` (key → stored
 * length: answers listings and keeps counts exact without reading values); counters in `meta`.
 * Writes queue and go as one batch at a time through the block store's writer thread, synced
 * before they resolve (group commit, as for blocks); only this store writes these keys, so the
 * counters it derives from the index are exact.
 */
export class RocksShardStore implements ShardStore {
  private readonly commits: GroupCommit<Op>
  private closed = false
  private counts: ShardStoreStats = { shards: 0, bytes: 0 }

  private constructor(
    private readonly rocks: SharedRocks,
    private readonly config: RocksShardStoreConfig,
  ) {
    this.commits = new GroupCommit((ops) => this.writeBatch(ops), {
      failed: (err, ops) => config.logger.error({ err, ops: ops.length }, 'shard store write failed'),
    })
  }

  static async open(rocks: SharedRocks, config: RocksShardStoreConfig): Promise<RocksShardStore> {
    const store = new RocksShardStore(rocks, config)
    const [n, bytes] = await store.read('meta', [META_SHARDS, META_SHARD_BYTES])
    store.counts = {
      shards: n ? Number(n.readBigUInt64BE(0)) : 0,
      bytes: bytes ? Number(bytes.readBigUInt64BE(0)) : 0,
    }
    return store
  }

  async put(cid: CID, bytes: Uint8Array): Promise<void> {
    this.assertOpen()
    const shard = decodeShard(bytes, `shard of ${cid.toString()}`)
    if (!sameBlock(shard.cid, cid)) {
      throw new InvalidArgumentError(
        `shard header names block ${shard.cid.toString()}, not ${cid.toString()}`,
      )
    }
    const key = shardKey(cid.multihash.bytes, shard.k, shard.m, shard.index)
    await new Promise<boolean>((resolve, reject) =>
      this.enqueue({ kind: 'put', key, bytes, resolve, reject }),
    )
  }

  async get(cid: CID, filter: ShardFilter = {}): Promise<{ shards: Shard[]; corrupt: ShardRef[] }> {
    this.assertOpen()
    const { k, m, indices } = filter
    // Named shards of a known code (the read path) are read by key; anything else needs a listing.
    const refs =
      k && m && indices !== undefined && indices.length > 0
        ? indices.map((index) => ({ k, m, index }))
        : (await this.refsOf(cid.multihash.bytes)).filter(
            (r) =>
              (!k || r.k === k) &&
              (!m || r.m === m) &&
              (indices === undefined || indices.length === 0 || indices.includes(r.index)),
          )
    const values = await this.read(
      'shards',
      refs.map((r) => shardKey(cid.multihash.bytes, r.k, r.m, r.index)),
    )
    const shards: Shard[] = []
    const corrupt: ShardRef[] = []
    for (const [i, value] of values.entries()) {
      const ref = refs[i] as ShardRef
      if (value === undefined) continue // deleted since the listing
      const shard = this.check(cid, ref, value)
      if (shard) shards.push(shard)
      else corrupt.push(ref)
    }
    if (corrupt.length > 0) await this.delete(cid, corrupt)
    return { shards, corrupt }
  }

  async list(cids: readonly CID[]): Promise<ShardRef[][]> {
    this.assertOpen()
    return Promise.all(cids.map((c) => this.refsOf(c.multihash.bytes)))
  }

  async delete(cid: CID, refs: readonly ShardRef[]): Promise<number> {
    if (this.closed) throw new StoreUnavailableError('shard store is closed')
    const held = await Promise.all(
      refs.map(
        (r) =>
          new Promise<boolean>((resolve, reject) =>
            this.enqueue({
              kind: 'delete',
              key: shardKey(cid.multihash.bytes, r.k, r.m, r.index),
              resolve,
              reject,
            }),
          ),
      ),
    )
    return held.filter(Boolean).length
  }

  async scan(after: Buffer | undefined, limit: number): Promise<StoredShardEntry[]> {
    this.assertOpen()
    const it = this.rocks.db.iterator({
      column: this.rocks.column('shard-sizes'),
      limit,
      ...(after ? { gt: after } : {}),
    })
    try {
      const entries = await it.nextv(limit)
      return entries.map(([key, size]) => ({ key, ...parseShardKey(key), size: size?.readUInt32BE(0) ?? 0 }))
    } finally {
      await it.close()
    }
  }

  async verify(entry: StoredShardEntry): Promise<boolean> {
    this.assertOpen()
    const [value] = await this.read('shards', [entry.key])
    if (value === undefined) return true
    try {
      const shard = decodeShard(value)
      const same = Buffer.compare(shard.cid.multihash.bytes, entry.multihash) === 0
      if (same && shard.k === entry.k && shard.m === entry.m && shard.index === entry.index) return true
    } catch {
      // fall through: dropped below
    }
    this.config.logger.error(
      { key: entry.key.toString('hex') },
      'stored shard failed verification; dropping it',
    )
    this.config.onCorrupt?.('scrub')
    await this.deleteKey(entry.key)
    return false
  }

  stats(): ShardStoreStats {
    return { ...this.counts }
  }

  /** Finishes queued writes; the block store closes the database after this. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.commits.idle()
  }

  /** Writes a raw value under a shard's key, bypassing verification: for fault-injection tests. */
  async putUnverifiedForTesting(key: Buffer, bytes: Uint8Array): Promise<void> {
    await this.rocks.write([{ type: 'put', column: 'shards', key, value: Buffer.from(bytes) }])
  }

  private check(cid: CID, ref: ShardRef, value: Buffer): Shard | undefined {
    try {
      const shard = decodeShard(value)
      if (sameBlock(shard.cid, cid) && shard.k === ref.k && shard.m === ref.m && shard.index === ref.index) {
        return shard
      }
    } catch {
      // reported below
    }
    this.config.logger.error(
      { cid: cid.toString(), shard: ref },
      'stored shard failed verification; dropping it',
    )
    this.config.onCorrupt?.('read')
    return undefined
  }

  private deleteKey(key: Buffer): Promise<boolean> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'delete', key, resolve, reject }))
  }

  private async refsOf(multihash: Uint8Array): Promise<ShardRef[]> {
    const it = this.rocks.db.iterator({
      column: this.rocks.column('shard-sizes'),
      values: false,
      ...shardKeyRange(multihash),
    })
    try {
      const refs: ShardRef[] = []
      for (;;) {
        const entries = await it.nextv(64)
        if (entries.length === 0) return refs
        for (const [key] of entries) {
          const { k, m, index } = parseShardKey(key)
          refs.push({ k, m, index })
        }
      }
    } finally {
      await it.close()
    }
  }

  /** Reads keys of one of this store's columns (handles are looked up per call: see SharedRocks). */
  private async read(column: SharedColumn, keys: Buffer[]): Promise<Array<Buffer | undefined>> {
    if (keys.length === 0) return []
    this.rocks.assertOpen()
    return (await this.rocks.db.getMany(keys, {
      column: this.rocks.column(column),
      valueEncoding: 'buffer',
    })) as Array<Buffer | undefined>
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError('shard store is closed')
    this.rocks.assertOpen()
  }

  private enqueue(op: Op): void {
    this.commits.enqueue(op)
  }

  private async writeBatch(ops: Op[]): Promise<void> {
    const sizes = await this.read(
      'shard-sizes',
      ops.map((op) => op.key),
    )
    // A shard is content-derived: a second put of the same key carries the same bytes.
    const { batch, counts, held } = planRecordBatch(
      ops,
      sizes,
      { data: 'shards', sizes: 'shard-sizes' },
      { count: this.counts.shards, bytes: this.counts.bytes },
    )
    batch.push({ type: 'put', column: 'meta', key: META_SHARDS, value: u64(counts.count) })
    batch.push({ type: 'put', column: 'meta', key: META_SHARD_BYTES, value: u64(counts.bytes) })
    await this.rocks.write(batch)
    this.counts = { shards: counts.count, bytes: counts.bytes }
    for (const [i, op] of ops.entries()) op.resolve(held[i] !== undefined)
  }
}

function sameBlock(a: CID, b: CID): boolean {
  return Buffer.compare(a.multihash.bytes, b.multihash.bytes) === 0
}
