import { mkdir } from 'node:fs/promises'
import { decodeCid, type Logger, StoreUnavailableError } from '@mycel/core'
import { PinRecord } from '@mycel/proto'
import { RocksLevel } from '@nxtedition/rocksdb'
import { newer, PinSet, pinKey } from './pin-set.js'

export interface PinStoreConfig {
  /** Directory of the pins database (DATA_DIR/pins). */
  path: string
  syncWrites: boolean
  logger: Logger
}

/**
 * The node's copy of the cluster's pin set: a small RocksDB of its own (key: the pin's CIDv1,
 * value: the encoded PinRecord), read whole into a PinSet at start. A separate database rather
 * than a column of the block store: pins are a few hundred bytes each and change rarely, and the
 * block store's write path stays untouched. One writer at a time writes synced batches that group
 * every merge queued meanwhile, so a record is durable before a node acknowledges it. The
 * binding's batch write is synchronous: a batch holds the event loop for one fdatasync, which
 * group commit keeps to one per batch (pins are rare next to blocks).
 *
 * Also the node's hybrid logical clock for the records it writes as a coordinator: never below
 * the wall clock nor below any timestamp it has seen, so a later write always wins here.
 */
export class PinStore {
  readonly set = new PinSet()
  private queue: Array<{
    keyed: Array<[string, PinRecord]>
    resolve: (applied: PinRecord[]) => void
    reject: (err: Error) => void
  }> = []
  private writing = false
  private readonly idle: Array<() => void> = []
  private clock = 0n
  private closed = false

  private constructor(
    private readonly db: RocksLevel,
    private readonly config: PinStoreConfig,
  ) {}

  static async open(config: PinStoreConfig): Promise<PinStore> {
    await mkdir(config.path, { recursive: true })
    const db = new RocksLevel(config.path, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await db.open({ createIfMissing: true, cacheSize: 1 << 20 })
    const store = new PinStore(db, config)
    const iterable = (db as unknown as { iterator(): AsyncIterable<[Buffer, Buffer]> }).iterator()
    for await (const [, value] of iterable) store.set.merge(PinRecord.decode(value))
    store.clock = store.set.maxTimestamp()
    config.logger.info({ pins: store.set.size, records: store.set.recordCount }, 'pin store opened')
    return store
  }

  /** A timestamp for a record this node writes now. */
  nextTimestamp(): bigint {
    const now = BigInt(Date.now())
    this.clock = now > this.clock ? now : this.clock + 1n
    return this.clock
  }

  /**
   * Merges records (last writer wins); resolves with those that changed the set, once durable.
   * Group commit: merges queued while a batch is written go out together in the next one.
   */
  apply(records: readonly PinRecord[]): Promise<PinRecord[]> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('pin store is closed'))
    let keyed: Array<[string, PinRecord]>
    try {
      // Every CID is decoded first, so a bad one changes nothing.
      keyed = records.map((r) => [pinKey(decodeCid(r.cid)), r])
    } catch (err) {
      return Promise.reject(err)
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ keyed, resolve, reject })
      if (!this.writing) {
        this.writing = true
        setImmediate(() => void this.drain())
      }
    })
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const jobs = this.queue.splice(0)
      try {
        const newest = new Map<string, PinRecord>()
        for (const job of jobs) {
          for (const [key, r] of job.keyed) {
            const seen = newest.get(key)
            if (seen === undefined || newer(r, seen)) newest.set(key, r)
          }
        }
        const changed = [...newest.entries()].filter(([, r]) => this.set.wouldChange(r))
        if (changed.length > 0) {
          const batch = this.db.batch()
          for (const [key, r] of changed)
            batch.put(Buffer.from(key), Buffer.from(PinRecord.encode(r).finish()))
          await batch.write({ sync: this.config.syncWrites })
        }
        const applied = new Set<PinRecord>()
        for (const [, r] of changed) {
          if (this.set.merge(r)) applied.add(r)
          if (r.timestamp > this.clock) this.clock = r.timestamp
        }
        for (const job of jobs) job.resolve(job.keyed.map(([, r]) => r).filter((r) => applied.has(r)))
      } catch (err) {
        for (const job of jobs) job.reject(err instanceof Error ? err : new Error(String(err)))
      }
    }
    this.writing = false
    for (const wake of this.idle.splice(0)) wake()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.writing) await new Promise<void>((resolve) => this.idle.push(resolve))
    await this.db.close()
  }
}
