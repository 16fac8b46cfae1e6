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
 * block store's write path stays untouched. Merges are serialised and each is one synced batch,
 * so a record is durable before a node acknowledges it.
 *
 * Also the node's hybrid logical clock for the records it writes as a coordinator: never below
 * the wall clock nor below any timestamp it has seen, so a later write always wins here.
 */
export class PinStore {
  readonly set = new PinSet()
  private tail: Promise<unknown> = Promise.resolve()
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

  /** Merges records (last writer wins); resolves with those that changed the set, once durable. */
  apply(records: readonly PinRecord[]): Promise<PinRecord[]> {
    const run = this.tail.then(async () => {
      if (this.closed) throw new StoreUnavailableError('pin store is closed')
      // The newest record per key (decoding every CID first, so a bad one changes nothing).
      const newest = new Map<string, PinRecord>()
      for (const r of records) {
        const key = pinKey(decodeCid(r.cid))
        const seen = newest.get(key)
        if (seen === undefined || newer(r, seen)) newest.set(key, r)
      }
      const changed = [...newest.entries()].filter(([, r]) => this.set.wouldChange(r))
      if (changed.length === 0) return []
      const batch = this.db.batch()
      for (const [key, r] of changed) batch.put(Buffer.from(key), Buffer.from(PinRecord.encode(r).finish()))
      await batch.write({ sync: this.config.syncWrites })
      const applied = changed.map(([, r]) => r).filter((r) => this.set.merge(r))
      for (const r of applied) if (r.timestamp > this.clock) this.clock = r.timestamp
      return applied
    })
    this.tail = run.catch(() => undefined)
    return run
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.tail
    await this.db.close()
  }
}
