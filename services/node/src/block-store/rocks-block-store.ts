import { mkdir } from 'node:fs/promises'
import { Worker } from 'node:worker_threads'
import {
  assertStorableBlock,
  BlockCorruptError,
  BlockNotFoundError,
  blockKey,
  blockMatches,
  type CID,
  type DurabilityPolicy,
  decodePolicy,
  encodePolicy,
  type Logger,
  StoreUnavailableError,
  samePolicy,
  strongerPolicy,
} from '@mycel/core'
import { endSpan, type SpanContext, sampledSpanContext, startBatchSpan } from '@mycel/telemetry'
import { RocksLevel } from '@nxtedition/rocksdb'
import {
  type BlockRecord,
  type BlockStore,
  type BlockStoreHealth,
  type BlockStoreStats,
  type EngineStats,
  type ListOptions,
  type NodeStateStore,
  type RepairQueueEntry,
  repairQueueEntry,
  repairQueueKey,
  type WriteBatchReport,
} from './block-store.js'
import { u64 } from './counted-records.js'
import { GroupCommit } from './group-commit.js'
import type { WriteReply, WriteRequest } from './rocks-writer.worker.js'

export interface RocksBlockStoreConfig {
  path: string
  /** Sync the WAL before resolving writes (durability of acknowledged writes). */
  syncWrites: boolean
  logger: Logger
  /** Told about every write batch (metrics). */
  onBatch?: (report: WriteBatchReport) => void
}

type Column = unknown
interface Columns {
  /** multihash → block bytes */
  default: Column
  /**
   * multihash → the block's record: size (uint32 BE) then its durability policy
   * (`encodePolicy`; empty for blocks stored before records existed). A small index that answers
   * has() and records() without reading block bytes, and keeps counts exact.
   */
  sizes: Column
  /** the metadata space: counters and node-level records (cursors, pass figures) */
  meta: Column
  /** the repair queue: (copies u8, multihash) → empty; byte order is risk order */
  repair: Column
}

interface Pending<T> {
  resolve: (value: T) => void
  reject: (e: Error) => void
}

type WriteOpBody =
  | ({ kind: 'put'; key: Buffer; bytes: Uint8Array; policy?: DurabilityPolicy } & Pending<void>)
  | ({ kind: 'policy'; key: Buffer; policy: DurabilityPolicy } & Pending<void>)
  | ({ kind: 'delete'; key: Buffer } & Pending<boolean>)
  | ({ kind: 'enqueue' | 'dequeue'; key: Buffer } & Pending<void>)
  | ({ kind: 'state'; key: Buffer; value: Buffer | undefined } & Pending<void>)
  /** The self-check's synced write (key META_PROBE). */
  | ({ kind: 'probe'; key: Buffer; value: Buffer } & Pending<void>)

/** `trace`: the sampled span the operation was queued from, if any (the batch span links to it). */
type WriteOp = WriteOpBody & { trace: SpanContext | undefined }

/**
 * A store that keeps its records in this database beside the blocks (the shard store): its own
 * columns, reads on the caller's thread, and writes through the block store's writer thread,
 * each batch synced like block writes. Handles are looked up per call: the block store may close
 * and reopen the database to recover from a failure.
 */
export interface SharedRocks {
  readonly db: RocksLevel
  column(name: SharedColumn): unknown
  write(ops: WriteRequest['ops']): Promise<void>
  /** Throws StoreUnavailableError while the database is closed or reopening. */
  assertOpen(): void
}

/** Columns owned by other stores in the same database (see shard-store/rocks-shard-store.ts). */
const SHARED_COLUMNS = { shards: { compression: false }, 'shard-sizes': {} }
export type SharedColumn = keyof typeof SHARED_COLUMNS | 'meta'

/**
 * Every column family of a node's database, with its options: RocksDB refuses to open a
 * database without naming them all (tools that open it offline use this list too).
 */
export const ROCKS_COLUMNS = {
  // Block data is mostly already compressed (media, archives) or random: ZSTD on flush and
  // compaction (the binding's default) would burn CPU for nothing, so blocks are stored as is.
  default: { compression: false },
  sizes: {},
  meta: {},
  repair: {},
  ...SHARED_COLUMNS,
}

const META_BLOCKS = Buffer.from('stats/blocks')
const META_BYTES = Buffer.from('stats/bytes')
const META_QUEUE = Buffer.from('stats/repair-queue')
const STATE_PREFIX = 'state/'
/** The self-check's key in the meta column: a synced write and read-back of a timestamp. */
const META_PROBE = Buffer.from('health/probe')
/**
 * A self-check writes only when no write succeeded for this long: a busy store proves itself
 * with every batch, an idle one costs one small synced write per check.
 */
const SELF_CHECK_IDLE_MS = 5_000
/** A self-check write or read that takes longer than this counts as a failure. */
const SELF_CHECK_TIMEOUT_MS = 10_000
/**
 * Longest wait between two reopen attempts of a failed store. Attempts back off from one per
 * self-check: each replays the WAL, which is wasted work while the disk is still full.
 */
const MAX_REOPEN_BACKOFF_MS = 60_000

/** Page size cap for list(): bounds what one call holds in memory. */
const MAX_LIST_LIMIT = 8192

function recordValue(size: number, policy: DurabilityPolicy | undefined): Buffer {
  const head = Buffer.alloc(4)
  head.writeUInt32BE(size)
  return policy === undefined ? head : Buffer.concat([head, encodePolicy(policy)])
}

function parseRecord(rawKey: Uint8Array, value: Buffer): BlockRecord {
  // Plain bytes: callers keep keys as cursors, and a Buffer may share a pooled allocation.
  const key = new Uint8Array(rawKey)
  const policy = decodePolicy(value.subarray(4))
  return policy === undefined
    ? { key, size: value.readUInt32BE(0) }
    : { key, size: value.readUInt32BE(0), policy }
}

/** The record after a write carrying `incoming`: the stronger policy wins (see BlockStore.put). */
function mergedPolicy(
  current: DurabilityPolicy | undefined,
  incoming: DurabilityPolicy | undefined,
): DurabilityPolicy | undefined {
  if (incoming === undefined) return current
  if (current === undefined) return incoming
  return strongerPolicy(current, incoming)
}

/**
 * RocksDB block store (@nxtedition/rocksdb: maintained, prebuilt for Node 24, and it honours
 * WriteOptions.sync — see ARCHITECTURE.md for why not rocksdb-native).
 *
 * Writes use group commit: puts and deletes queue up, and one writer at a time turns everything
 * queued into a single WriteBatch written with sync=true, then resolves all of them. So every
 * acknowledged write is in a synced WAL, and under load many blocks share one fdatasync. The
 * batch itself is written by a worker thread (rocks-writer.worker.ts), so the fdatasync never
 * blocks the event loop that serves reads and receives the next blocks.
 */
export class RocksBlockStore implements BlockStore, NodeStateStore {
  private db!: RocksLevel
  private columns!: Columns
  private readonly commits: GroupCommit<WriteOp, boolean>
  private closed = false
  private counts: BlockStoreStats = { blocks: 0, bytes: 0 }
  private queued = 0
  private writer!: Worker
  private writerFailure: Error | undefined
  private nextWriteId = 0
  private readonly writesInFlight = new Map<number, { resolve: () => void; reject: (e: Error) => void }>()
  /** Set when a write or a self-check failed; cleared by the next write that succeeds. */
  private failure: Error | undefined
  /** True while the database is closed and reopened to recover from a failure. */
  private recovering = false
  /** The database and its writer thread are open (false after a reopen that failed). */
  private open = false
  private lastWriteOkAt = 0
  private reopenBackoffMs = 0
  private nextReopenAt = 0

  private constructor(private readonly config: RocksBlockStoreConfig) {
    this.commits = new GroupCommit((ops) => this.writeBatch(ops), {
      committed: (wrote) => {
        if (!wrote) return
        this.failure = undefined
        this.lastWriteOkAt = Date.now()
      },
      failed: (error, ops) => {
        // Readiness turns false until a self-check recovers the store.
        if (this.failure === undefined)
          this.config.logger.error({ err: error, ops: ops.length }, 'block store write failed')
        this.failure = error
      },
    })
  }

  static async open(config: RocksBlockStoreConfig): Promise<RocksBlockStore> {
    const store = new RocksBlockStore(config)
    await store.openDb()
    return store
  }

  private async openDb(): Promise<void> {
    await mkdir(this.config.path, { recursive: true })
    const columns = ROCKS_COLUMNS
    const db = new RocksLevel(this.config.path, { columns, keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await db.open({ columns, createIfMissing: true })
    try {
      this.db = db
      this.columns = db.columns as unknown as Columns
      const [blocks, bytes, queued] = (await db.getMany([META_BLOCKS, META_BYTES, META_QUEUE], {
        column: this.columns.meta,
        valueEncoding: 'buffer',
      })) as Array<Buffer | undefined>
      this.counts = {
        blocks: blocks ? Number(blocks.readBigUInt64BE(0)) : 0,
        bytes: bytes ? Number(bytes.readBigUInt64BE(0)) : 0,
      }
      this.queued = queued ? Number(queued.readBigUInt64BE(0)) : 0
      await this.startWriter()
    } catch (err) {
      await db.close().catch(() => undefined)
      throw err
    }
    this.open = true
    this.lastWriteOkAt = Date.now()
  }

  private async startWriter(): Promise<void> {
    const writer = new Worker(new URL('./rocks-writer.worker.js', import.meta.url), {
      workerData: { handle: (this.db as unknown as { handle: bigint }).handle },
    })
    await new Promise<void>((resolve, reject) => {
      writer.once('message', () => resolve())
      writer.once('error', reject)
    })
    this.writerFailure = undefined
    writer.on('message', (reply: WriteReply) => {
      const pending = this.writesInFlight.get(reply.id)
      this.writesInFlight.delete(reply.id)
      if (this.writesInFlight.size === 0) writer.unref()
      if (reply.error === undefined) pending?.resolve()
      else pending?.reject(new Error(reply.error))
    })
    const fail = (err: Error) => {
      this.writerFailure = err
      this.config.logger.error({ err }, 'RocksDB writer thread failed')
      for (const p of this.writesInFlight.values()) p.reject(err)
      this.writesInFlight.clear()
    }
    writer.on('error', fail)
    // An idle writer must not keep a process alive; one with writes in flight must (see applyBatch).
    writer.unref()
    writer.on('exit', (code) => {
      if (!this.closed && !this.recovering) fail(new Error(`RocksDB writer thread exited (${code})`))
    })
    this.writer = writer
  }

  /** Applies one batch on the writer thread; resolves when it is written (and synced if `sync`). */
  private applyBatch(ops: WriteRequest['ops'], sync: boolean): Promise<void> {
    if (this.writerFailure !== undefined) return Promise.reject(this.writerFailure)
    const id = this.nextWriteId++
    // Block bytes that own their whole ArrayBuffer move to the writer instead of being copied, so
    // a block is never held twice; callers must not touch a block's bytes after put().
    const transfer: ArrayBuffer[] = []
    for (const op of ops) {
      const v = op.value
      if (
        v !== undefined &&
        v.byteOffset === 0 &&
        v.buffer instanceof ArrayBuffer &&
        v.byteLength === v.buffer.byteLength
      ) {
        if (!transfer.includes(v.buffer)) transfer.push(v.buffer)
      }
    }
    return new Promise((resolve, reject) => {
      if (this.writesInFlight.size === 0) this.writer.ref()
      this.writesInFlight.set(id, { resolve, reject })
      this.writer.postMessage({ id, sync, ops } satisfies WriteRequest, transfer)
    })
  }

  put(cid: CID, bytes: Uint8Array, policy?: DurabilityPolicy): Promise<void> {
    try {
      assertStorableBlock(cid, bytes)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.write<void>((p) => ({ kind: 'put', key: Buffer.from(blockKey(cid)), bytes, policy, ...p }))
  }

  upgradePolicy(cid: CID, policy: DurabilityPolicy): Promise<void> {
    return this.write<void>((p) => ({ kind: 'policy', key: Buffer.from(blockKey(cid)), policy, ...p }))
  }

  async get(cid: CID): Promise<Uint8Array> {
    this.assertOpen()
    const [value] = (await this.db.getMany([Buffer.from(blockKey(cid))], {
      valueEncoding: 'buffer',
    })) as Array<Buffer | undefined>
    if (value === undefined) throw new BlockNotFoundError(cid.toString())
    if (!blockMatches(cid, value)) {
      // Never serve a bad copy; drop it so that repair can put a good one back.
      this.config.logger.error({ cid: cid.toString() }, 'stored block failed verification; dropping the copy')
      await this.delete(cid).catch(() => undefined)
      throw new BlockCorruptError(cid.toString())
    }
    return value
  }

  async has(cids: readonly CID[]): Promise<boolean[]> {
    return (await this.rawRecords(cids)).map((v) => v !== undefined)
  }

  async records(cids: readonly CID[]): Promise<Array<BlockRecord | undefined>> {
    const values = await this.rawRecords(cids)
    return values.map((v, i) => (v === undefined ? undefined : parseRecord(blockKey(cids[i] as CID), v)))
  }

  private async rawRecords(cids: readonly CID[]): Promise<Array<Buffer | undefined>> {
    this.assertOpen()
    if (cids.length === 0) return []
    return (await this.db.getMany(
      cids.map((c) => Buffer.from(blockKey(c))),
      { column: this.columns.sizes, valueEncoding: 'buffer' },
    )) as Array<Buffer | undefined>
  }

  async list(options: ListOptions): Promise<BlockRecord[]> {
    const rows = await this.scan(this.columns.sizes, options.after, options.limit)
    return rows.map(([key, value]) => parseRecord(key, value))
  }

  /** Up to `limit` (key, value) rows of a column in key order, after `after`. */
  private async scan(
    column: Column,
    after: Uint8Array | undefined,
    limit: number,
  ): Promise<Array<[Buffer, Buffer]>> {
    this.assertOpen()
    const n = Math.max(1, Math.min(MAX_LIST_LIMIT, Math.floor(limit)))
    const it = this.db.iterator({
      column,
      ...(after !== undefined && after.byteLength > 0 ? { gt: Buffer.from(after) } : {}),
      limit: n,
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
    })
    try {
      return await it.nextv(n)
    } finally {
      await it.close()
    }
  }

  delete(cid: CID): Promise<boolean> {
    return this.write<boolean>((p) => ({ kind: 'delete', key: Buffer.from(blockKey(cid)), ...p }))
  }

  // NodeStateStore

  async getState(name: string): Promise<Uint8Array | undefined> {
    this.assertOpen()
    const [value] = (await this.db.getMany([Buffer.from(STATE_PREFIX + name)], {
      column: this.columns.meta,
      valueEncoding: 'buffer',
    })) as Array<Buffer | undefined>
    return value
  }

  setState(name: string, value: Uint8Array | undefined): Promise<void> {
    return this.write<void>((p) => ({
      kind: 'state',
      key: Buffer.from(STATE_PREFIX + name),
      value: value === undefined ? undefined : Buffer.from(value),
      ...p,
    }))
  }

  async enqueueRepairs(entries: readonly RepairQueueEntry[]): Promise<void> {
    await Promise.all(
      entries.map((e) => this.write<void>((p) => ({ kind: 'enqueue', key: repairQueueKey(e), ...p }))),
    )
  }

  async dequeueRepairs(entries: readonly RepairQueueEntry[]): Promise<void> {
    await Promise.all(
      entries.map((e) => this.write<void>((p) => ({ kind: 'dequeue', key: repairQueueKey(e), ...p }))),
    )
  }

  async nextRepairs(after: RepairQueueEntry | undefined, limit: number): Promise<RepairQueueEntry[]> {
    const rows = await this.scan(this.columns.repair, after && repairQueueKey(after), limit)
    return rows.map(([key]) => repairQueueEntry(key))
  }

  repairQueueLength(): number {
    return this.queued
  }

  private write<T>(op: (p: Pending<T>) => WriteOpBody): Promise<T> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('block store is closed'))
    const trace = sampledSpanContext()
    return new Promise<T>((resolve, reject) => this.enqueue({ ...op({ resolve, reject }), trace }))
  }

  stats(): BlockStoreStats {
    return { ...this.counts }
  }

  /**
   * RocksDB's own figures, read at scrape time (in-memory properties: cheap). The binding asks the
   * default column family, which holds the block data (nearly all bytes); `background-errors`
   * and `is-write-stopped` are database-wide.
   */
  engineStats(): EngineStats | undefined {
    if (this.closed || this.recovering || this.db.status !== 'open') return undefined
    const p = (name: string) => Number(this.db.getProperty?.(`rocksdb.${name}`) ?? Number.NaN)
    return {
      estimatedKeys: p('estimate-num-keys'),
      liveSstBytes: p('live-sst-files-size'),
      totalSstBytes: p('total-sst-files-size'),
      memtableBytes: p('cur-size-all-mem-tables'),
      pendingCompactionBytes: p('estimate-pending-compaction-bytes'),
      runningCompactions: p('num-running-compactions'),
      runningFlushes: p('num-running-flushes'),
      backgroundErrors: p('background-errors'),
      writeStopped: p('is-write-stopped'),
    }
  }

  health(): BlockStoreHealth {
    if (this.closed) return { ok: false, reason: 'block store is closed' }
    if (this.recovering) return { ok: false, reason: 'block store is reopening after a failure' }
    const failure = this.writerFailure ?? this.failure
    if (failure !== undefined) return { ok: false, reason: `block store failing: ${failure.message}` }
    if (!this.open) return { ok: false, reason: 'block store is not open' }
    return { ok: true }
  }

  /**
   * The readiness self-check. A store that failed is first closed and reopened: RocksDB keeps a
   * write error (disk full, I/O error) sticky until the database is reopened, and reopening
   * replays the WAL, so nothing acknowledged is lost. Then, unless a write succeeded in the last
   * SELF_CHECK_IDLE_MS, a timestamp is written through the normal queue (synced, like a block)
   * and read back.
   */
  async selfCheck(): Promise<BlockStoreHealth> {
    if (this.closed || this.recovering) return this.health()
    try {
      if (!this.open || this.writerFailure !== undefined || this.failure !== undefined) {
        if (Date.now() < this.nextReopenAt) return this.health()
        this.reopenBackoffMs = Math.min(Math.max(1_000, this.reopenBackoffMs * 2), MAX_REOPEN_BACKOFF_MS)
        this.nextReopenAt = Date.now() + this.reopenBackoffMs
        await this.reopen()
      }
      if (Date.now() - this.lastWriteOkAt >= SELF_CHECK_IDLE_MS) {
        const value = Buffer.from(String(Date.now()))
        await withTimeout(
          new Promise<void>((resolve, reject) =>
            this.enqueue({ kind: 'probe', key: META_PROBE, value, resolve, reject, trace: undefined }),
          ),
          'self-check write',
        )
        const [read] = (await withTimeout(
          this.db.getMany([META_PROBE], { column: this.columns.meta, valueEncoding: 'buffer' }),
          'self-check read',
        )) as Array<Buffer | undefined>
        if (read === undefined || !read.equals(value))
          throw new Error('self-check read back a different value')
      }
      this.reopenBackoffMs = 0
      this.nextReopenAt = 0
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err))
      if (this.failure === undefined)
        this.config.logger.error({ err: error }, 'block store self-check failed')
      this.failure = error
    }
    return this.health()
  }

  /** Closes and reopens the database (see selfCheck); writes and reads wait out as unavailable. */
  private async reopen(): Promise<void> {
    this.recovering = true
    try {
      await this.commits.idle()
      await this.closeDb()
      this.config.logger.warn(
        { err: (this.writerFailure ?? this.failure)?.message },
        'block store closed after a failure; reopening',
      )
      await this.openDb()
      // Healthy again only once a write succeeds: the self-check writes at once.
      this.lastWriteOkAt = 0
      this.config.logger.info({ ...this.counts, repairQueue: this.queued }, 'block store reopened')
    } finally {
      this.recovering = false
    }
  }

  /** Stops the writer thread (it shares the handle and closes its side first), then closes RocksDB. */
  private async closeDb(): Promise<void> {
    if (!this.open) return
    this.open = false
    const writer = this.writer
    if (writer.threadId !== -1) {
      await new Promise<void>((resolve) => {
        writer.ref()
        writer.once('exit', () => resolve())
        writer.postMessage('close')
      })
    }
    // After a write error RocksDB refuses the first close ("Seen error"); the second closes.
    await this.db.close().catch(() => this.db.close())
  }

  /** Finishes queued writes, then closes RocksDB. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.commits.idle()
    await this.closeDb()
  }

  /** The database for a store that shares it (the shard store); that store must close first. */
  shared(): SharedRocks {
    const store = this
    return {
      get db() {
        return store.db
      },
      column: (name) => this.db.columns[name],
      write: (ops) => {
        try {
          this.assertOpen()
        } catch (err) {
          return Promise.reject(err)
        }
        return this.applyBatch(ops, this.config.syncWrites)
      },
      assertOpen: () => this.assertOpen(),
    }
  }

  /** Writes the raw value under a block's key, bypassing verification: for fault-injection tests. */
  async putUnverifiedForTesting(cid: CID, bytes: Uint8Array): Promise<void> {
    const batch = this.db.batch()
    batch.put(Buffer.from(blockKey(cid)), Buffer.from(bytes))
    await batch.write({ sync: true })
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError('block store is closed')
    if (this.recovering || !this.open)
      throw new StoreUnavailableError('block store is not available (reopening)')
  }

  private enqueue(op: WriteOp): void {
    if ((this.recovering || !this.open) && op.kind !== 'probe') {
      op.reject(new StoreUnavailableError('block store is not available (reopening)'))
      return
    }
    this.commits.enqueue(op)
  }

  /**
   * One group commit: every queued op in one atomic batch with the counters; true when it wrote
   * to RocksDB (a batch of puts of blocks already held writes nothing). Traced as
   * `mycel.rocksdb.write_batch` when an op came from a sampled trace (the span covers the read of
   * which keys exist and the round trip to the writer thread, whose synced write is the cost);
   * untraced batches create no span.
   */
  private async writeBatch(ops: WriteOp[]): Promise<boolean> {
    const started = performance.now()
    const span = startBatchSpan(
      'mycel.rocksdb.write_batch',
      ops.map((op) => op.trace),
      { 'db.system.name': 'rocksdb', 'db.operation.name': 'write_batch', 'mycel.batch.ops': ops.length },
    )
    const report: WriteBatchReport = {
      ops: ops.length,
      newBlocks: 0,
      existingBlocks: 0,
      bytes: 0,
      seconds: 0,
      ok: false,
    }
    let applied: { wrote: boolean; acknowledge: () => void }
    try {
      applied = await this.applyOps(ops, report)
      report.ok = true
      span?.setAttributes({
        'mycel.batch.new_blocks': report.newBlocks,
        'mycel.batch.existing_blocks': report.existingBlocks,
        'mycel.batch.bytes': report.bytes,
      })
      endSpan(span)
    } catch (err) {
      endSpan(span, err)
      throw err
    } finally {
      report.seconds = (performance.now() - started) / 1000
      this.config.onBatch?.(report)
    }
    // Callers hear of durability after the batch is counted, so metrics never lag an ack.
    applied.acknowledge()
    return applied.wrote
  }

  /** Writes the batch; returns whether it wrote and what acknowledges its callers. */
  private async applyOps(
    ops: WriteOp[],
    report: WriteBatchReport,
  ): Promise<{ wrote: boolean; acknowledge: () => void }> {
    // Which keys exist decides the counters and merged records; only this single writer changes them.
    const blockOps = ops.filter((op) => op.kind === 'put' || op.kind === 'policy' || op.kind === 'delete')
    const queueOps = ops.filter((op) => op.kind === 'enqueue' || op.kind === 'dequeue')
    const [records, queueRows] = await Promise.all([
      this.lookup(this.columns.sizes, blockOps),
      this.lookup(this.columns.repair, queueOps),
    ])
    const present = new Map<string, BlockRecord>()
    blockOps.forEach((op, i) => {
      const value = records[i]
      const id = op.key.toString('hex')
      if (value !== undefined && !present.has(id)) present.set(id, parseRecord(op.key, value))
    })
    const inQueue = new Set<string>()
    queueOps.forEach((op, i) => {
      if (queueRows[i] !== undefined) inQueue.add(op.key.toString('hex'))
    })
    const counts = { ...this.counts }
    let queued = this.queued
    let blockWrites = false
    // The self-check's probe is synced like a block: it proves the WAL's fdatasync works.
    let synced = false
    const batch: WriteRequest['ops'] = []
    const results: Array<() => void> = []
    for (const op of ops) {
      const id = op.key.toString('hex')
      switch (op.kind) {
        case 'put': {
          const held = present.get(id)
          if (held === undefined) {
            batch.push({ type: 'put', column: 'default', key: op.key, value: op.bytes })
            batch.push({
              type: 'put',
              column: 'sizes',
              key: op.key,
              value: recordValue(op.bytes.byteLength, op.policy),
            })
            present.set(id, { key: op.key, size: op.bytes.byteLength, policy: op.policy })
            counts.blocks += 1
            counts.bytes += op.bytes.byteLength
            report.newBlocks++
            report.bytes += op.bytes.byteLength
            blockWrites = true
          } else {
            report.existingBlocks++
            blockWrites = this.mergeRecord(batch, present, held, op.policy) || blockWrites
          }
          results.push(() => op.resolve())
          break
        }
        case 'policy': {
          const held = present.get(id)
          if (held !== undefined)
            blockWrites = this.mergeRecord(batch, present, held, op.policy) || blockWrites
          results.push(() => op.resolve())
          break
        }
        case 'delete': {
          const held = present.get(id)
          if (held !== undefined) {
            batch.push({ type: 'del', column: 'default', key: op.key })
            batch.push({ type: 'del', column: 'sizes', key: op.key })
            present.delete(id)
            counts.blocks -= 1
            counts.bytes -= held.size
            blockWrites = true
          }
          results.push(() => op.resolve(held !== undefined))
          break
        }
        case 'enqueue':
          if (!inQueue.has(id)) {
            batch.push({ type: 'put', column: 'repair', key: op.key, value: Buffer.alloc(0) })
            inQueue.add(id)
            queued++
          }
          results.push(() => op.resolve())
          break
        case 'dequeue':
          if (inQueue.has(id)) {
            batch.push({ type: 'del', column: 'repair', key: op.key })
            inQueue.delete(id)
            queued--
          }
          results.push(() => op.resolve())
          break
        case 'state':
          batch.push(
            op.value === undefined
              ? { type: 'del', column: 'meta', key: op.key }
              : { type: 'put', column: 'meta', key: op.key, value: op.value },
          )
          results.push(() => op.resolve())
          break
        case 'probe':
          batch.push({ type: 'put', column: 'meta', key: op.key, value: op.value })
          synced = true
          results.push(() => op.resolve())
          break
      }
    }
    if (blockWrites) {
      batch.push({ type: 'put', column: 'meta', key: META_BLOCKS, value: u64(counts.blocks) })
      batch.push({ type: 'put', column: 'meta', key: META_BYTES, value: u64(counts.bytes) })
    }
    if (queued !== this.queued)
      batch.push({ type: 'put', column: 'meta', key: META_QUEUE, value: u64(queued) })
    // Only block writes (and the self-check) are acknowledged to peers and need the synced WAL;
    // repair bookkeeping alone is cheap to redo after a crash.
    if (batch.length > 0) await this.applyBatch(batch, (blockWrites || synced) && this.config.syncWrites)
    this.counts = counts
    this.queued = queued
    return {
      wrote: batch.length > 0,
      acknowledge: () => {
        for (const done of results) done()
      },
    }
  }

  /** Current values of the ops' keys in `column` (one read for the whole batch). */
  private async lookup(column: Column, ops: WriteOp[]): Promise<Array<Buffer | undefined>> {
    if (ops.length === 0) return []
    return (await this.db.getMany(
      ops.map((op) => op.key),
      { column, valueEncoding: 'buffer' },
    )) as Array<Buffer | undefined>
  }

  /** Rewrites a held block's record when `incoming` strengthens it; true when it wrote. */
  private mergeRecord(
    batch: WriteRequest['ops'],
    present: Map<string, BlockRecord>,
    held: BlockRecord,
    incoming: DurabilityPolicy | undefined,
  ): boolean {
    const merged = mergedPolicy(held.policy, incoming)
    if (merged === undefined || (held.policy !== undefined && samePolicy(merged, held.policy))) return false
    const key = Buffer.from(held.key)
    batch.push({ type: 'put', column: 'sizes', key, value: recordValue(held.size, merged) })
    present.set(key.toString('hex'), { ...held, policy: merged })
    return true
  }
}

/** `promise`, or a rejection naming `what` after SELF_CHECK_TIMEOUT_MS. */
async function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what} timed out after ${SELF_CHECK_TIMEOUT_MS} ms`)),
          SELF_CHECK_TIMEOUT_MS,
        )
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}
