import { mkdir } from 'node:fs/promises'
import { Worker } from 'node:worker_threads'
import {
  assertStorableBlock,
  BlockCorruptError,
  BlockNotFoundError,
  blockKey,
  blockMatches,
  type CID,
  type Logger,
  StoreUnavailableError,
} from '@mycel/core'
import { RocksLevel } from '@nxtedition/rocksdb'
import type { BlockStore, BlockStoreStats } from './block-store.js'
import { planRecordBatch, u64 } from './counted-records.js'
import { GroupCommit } from './group-commit.js'
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
  /** multihash → block size (uint32 BE): a small index that answers has() and keeps counts exact */
  sizes: Column
  /** the metadata space: counters and node-level records */
  meta: Column
}

type WriteOp =
  | { kind: 'put'; key: Buffer; bytes: Uint8Array; resolve: () => void; reject: (e: Error) => void }
  | { kind: 'delete'; key: Buffer; resolve: (existed: boolean) => void; reject: (e: Error) => void }

/**
 * A store that keeps its records in this database beside the blocks (the shard store): its own
 * columns, reads on the caller's thread, and writes through the block store's writer thread,
 * each batch synced like block writes.
 */
export interface SharedRocks {
  db: RocksLevel
  column(name: SharedColumn): unknown
  write(ops: WriteRequest['ops']): Promise<void>
}

/** Columns owned by other stores in the same database (see shard-store/rocks-shard-store.ts). */
const SHARED_COLUMNS = { shards: { compression: false }, 'shard-sizes': {} }
export type SharedColumn = keyof typeof SHARED_COLUMNS | 'meta'

const META_BLOCKS = Buffer.from('stats/blocks')
const META_BYTES = Buffer.from('stats/bytes')

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
export class RocksBlockStore implements BlockStore {
  private db!: RocksLevel
  private columns!: Columns
  private readonly commits: GroupCommit<WriteOp>
  private closed = false
  private counts: BlockStoreStats = { blocks: 0, bytes: 0 }
  private writer!: Worker
  private writerFailure: Error | undefined
  private nextWriteId = 0
  private readonly writesInFlight = new Map<number, { resolve: () => void; reject: (e: Error) => void }>()

  private constructor(private readonly config: RocksBlockStoreConfig) {
    this.commits = new GroupCommit((ops) => this.writeBatch(ops), config.logger, 'block store')
  }

  static async open(config: RocksBlockStoreConfig): Promise<RocksBlockStore> {
    const store = new RocksBlockStore(config)
    await store.openDb()
    return store
  }

  private async openDb(): Promise<void> {
    await mkdir(this.config.path, { recursive: true })
    // Block data is mostly already compressed (media, archives) or random: ZSTD on flush and
    // compaction (the binding's default) would burn CPU for nothing, so blocks are stored as is.
    const columns = { default: { compression: false }, sizes: {}, meta: {}, ...SHARED_COLUMNS }
    this.db = new RocksLevel(this.config.path, { columns, keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await this.db.open({ columns, createIfMissing: true })
    this.columns = this.db.columns as unknown as Columns
    const [blocks, bytes] = (await this.db.getMany([META_BLOCKS, META_BYTES], {
      column: this.columns.meta,
      valueEncoding: 'buffer',
    })) as Array<Buffer | undefined>
    this.counts = {
      blocks: blocks ? Number(blocks.readBigUInt64BE(0)) : 0,
      bytes: bytes ? Number(bytes.readBigUInt64BE(0)) : 0,
    }
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

  /** Applies one batch on the writer thread; resolves when it is durable. */
  private applyBatch(ops: WriteRequest['ops']): Promise<void> {
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
      this.writer.postMessage({ id, sync: this.config.syncWrites, ops } satisfies WriteRequest, transfer)
    })
  }

  put(cid: CID, bytes: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('block store is closed'))
    try {
      assertStorableBlock(cid, bytes)
    } catch (err) {
      return Promise.reject(err)
    }
    return new Promise((resolve, reject) => {
      this.enqueue({ kind: 'put', key: Buffer.from(blockKey(cid)), bytes, resolve, reject })
    })
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
    this.assertOpen()
    if (cids.length === 0) return []
    const values = (await this.db.getMany(
      cids.map((c) => Buffer.from(blockKey(c))),
      { column: this.columns.sizes, valueEncoding: 'buffer' },
    )) as Array<Buffer | undefined>
    return values.map((v) => v !== undefined)
  }

  delete(cid: CID): Promise<boolean> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('block store is closed'))
    return new Promise((resolve, reject) => {
      this.enqueue({ kind: 'delete', key: Buffer.from(blockKey(cid)), resolve, reject })
    })
  }

  stats(): BlockStoreStats {
    return { ...this.counts }
  }

  /** Finishes queued writes, then closes RocksDB. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.commits.idle()
    // The writer shares the database handle: it closes its side first.
    await new Promise<void>((resolve) => {
      this.writer.ref()
      this.writer.once('exit', () => resolve())
      this.writer.postMessage('close')
    })
    await this.db.close()
  }

  /** The database for a store that shares it (the shard store); that store must close first. */
  shared(): SharedRocks {
    return {
      db: this.db,
      column: (name) => this.db.columns[name],
      write: (ops) =>
        this.closed ? Promise.reject(new StoreUnavailableError('store is closed')) : this.applyBatch(ops),
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
  }

  private enqueue(op: WriteOp): void {
    this.commits.enqueue(op)
  }

  private async writeBatch(ops: WriteOp[]): Promise<void> {
    // Which keys exist decides the counters; only this single writer changes them.
    const sizes = (await this.db.getMany(
      ops.map((op) => op.key),
      { column: this.columns.sizes, valueEncoding: 'buffer' },
    )) as Array<Buffer | undefined>
    const plan = planRecordBatch(
      ops,
      sizes,
      { data: 'default', sizes: 'sizes' },
      { count: this.counts.blocks, bytes: this.counts.bytes },
    )
    const { batch, counts } = plan
    batch.push({ type: 'put', column: 'meta', key: META_BLOCKS, value: u64(counts.count) })
    batch.push({ type: 'put', column: 'meta', key: META_BYTES, value: u64(counts.bytes) })
    await this.applyBatch(batch)
    this.counts = { blocks: counts.count, bytes: counts.bytes }
    for (const [i, op] of ops.entries()) {
      if (op.kind === 'put') op.resolve()
      else op.resolve(plan.held[i] !== undefined)
    }
  }
}
