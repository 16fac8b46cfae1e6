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
import { RocksLevel } from '@nxtedition/rocksdb'
import {
  type BlockRecord,
  type BlockStore,
  type BlockStoreStats,
  type ListOptions,
  type NodeStateStore,
  type RepairQueueEntry,
  repairQueueEntry,
  repairQueueKey,
} from './block-store.js'
import type { WriteReply, WriteRequest } from './rocks-writer.worker.js'

export interface RocksBlockStoreConfig {
  path: string
  /** Sync the WAL before resolving writes (durability of acknowledged writes). */
  syncWrites: boolean
  logger: Logger
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

type WriteOp =
  | ({ kind: 'put'; key: Buffer; bytes: Uint8Array; policy?: DurabilityPolicy } & Pending<void>)
  | ({ kind: 'policy'; key: Buffer; policy: DurabilityPolicy } & Pending<void>)
  | ({ kind: 'delete'; key: Buffer } & Pending<boolean>)
  | ({ kind: 'enqueue' | 'dequeue'; key: Buffer } & Pending<void>)
  | ({ kind: 'state'; key: Buffer; value: Buffer | undefined } & Pending<void>)

const META_BLOCKS = Buffer.from('stats/blocks')
const META_BYTES = Buffer.from('stats/bytes')
const META_QUEUE = Buffer.from('stats/repair-queue')
const STATE_PREFIX = 'state/'

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
  private queue: WriteOp[] = []
  private writing = false
  private closed = false
  private counts: BlockStoreStats = { blocks: 0, bytes: 0 }
  private queued = 0
  private idleWaiters: Array<() => void> = []
  private writer!: Worker
  private writerFailure: Error | undefined
  private nextWriteId = 0
  private readonly writesInFlight = new Map<number, { resolve: () => void; reject: (e: Error) => void }>()

  private constructor(private readonly config: RocksBlockStoreConfig) {}

  static async open(config: RocksBlockStoreConfig): Promise<RocksBlockStore> {
    const store = new RocksBlockStore(config)
    await store.openDb()
    return store
  }

  private async openDb(): Promise<void> {
    await mkdir(this.config.path, { recursive: true })
    // Block data is mostly already compressed (media, archives) or random: ZSTD on flush and
    // compaction (the binding's default) would burn CPU for nothing, so blocks are stored as is.
    const columns = { default: { compression: false }, sizes: {}, meta: {}, repair: {} }
    this.db = new RocksLevel(this.config.path, { columns, keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await this.db.open({ columns, createIfMissing: true })
    this.columns = this.db.columns as unknown as Columns
    const [blocks, bytes, queued] = (await this.db.getMany([META_BLOCKS, META_BYTES, META_QUEUE], {
      column: this.columns.meta,
      valueEncoding: 'buffer',
    })) as Array<Buffer | undefined>
    this.counts = {
      blocks: blocks ? Number(blocks.readBigUInt64BE(0)) : 0,
      bytes: bytes ? Number(bytes.readBigUInt64BE(0)) : 0,
    }
    this.queued = queued ? Number(queued.readBigUInt64BE(0)) : 0
    await this.startWriter()
  }

  private async startWriter(): Promise<void> {
    const writer = new Worker(new URL('./rocks-writer.worker.js', import.meta.url), {
      workerData: { handle: (this.db as unknown as { handle: bigint }).handle },
    })
    await new Promise<void>((resolve, reject) => {
      writer.once('message', () => resolve())
      writer.once('error', reject)
    })
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
      if (!this.closed) fail(new Error(`RocksDB writer thread exited (${code})`))
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

  private write<T>(op: (p: Pending<T>) => WriteOp): Promise<T> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('block store is closed'))
    return new Promise<T>((resolve, reject) => this.enqueue(op({ resolve, reject })))
  }

  stats(): BlockStoreStats {
    return { ...this.counts }
  }

  /** Finishes queued writes, then closes RocksDB. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.writing || this.queue.length > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve))
    }
    // The writer shares the database handle: it closes its side first.
    await new Promise<void>((resolve) => {
      this.writer.ref()
      this.writer.once('exit', () => resolve())
      this.writer.postMessage('close')
    })
    await this.db.close()
  }

  /** Writes the raw value under a block's key, bypassing verification: for fault-injection tests. */
  async putUnverifiedForTesting(cid: CID, bytes: Uint8Array): Promise<void> {
    const batch = this.db.batch()
    batch.put(Buffer.from(blockKey(cid)), Buffer.from(bytes))
    await batch.write({ sync: true })
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError('block store is closed')
  }

  private enqueue(op: WriteOp): void {
    this.queue.push(op)
    if (!this.writing) {
      this.writing = true
      // Yield once so that writes arriving in the same tick share the batch.
      setImmediate(() => void this.drain())
    }
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const ops = this.queue.splice(0)
      try {
        await this.writeBatch(ops)
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err))
        this.config.logger.error({ err: error, ops: ops.length }, 'block store write failed')
        for (const op of ops) op.reject(new StoreUnavailableError(`write failed: ${error.message}`))
      }
    }
    this.writing = false
    for (const resolve of this.idleWaiters.splice(0)) resolve()
  }

  private async writeBatch(ops: WriteOp[]): Promise<void> {
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
            blockWrites = true
          } else {
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
      }
    }
    if (blockWrites) {
      batch.push({ type: 'put', column: 'meta', key: META_BLOCKS, value: u64(counts.blocks) })
      batch.push({ type: 'put', column: 'meta', key: META_BYTES, value: u64(counts.bytes) })
    }
    if (queued !== this.queued)
      batch.push({ type: 'put', column: 'meta', key: META_QUEUE, value: u64(queued) })
    // Only block writes are acknowledged to peers and need the synced WAL; repair bookkeeping alone
    // is cheap to redo after a crash.
    if (batch.length > 0) await this.applyBatch(batch, blockWrites && this.config.syncWrites)
    this.counts = counts
    this.queued = queued
    for (const done of results) done()
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

function u64(n: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}
