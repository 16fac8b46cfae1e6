import {
  assertStorableBlock,
  BlockCorruptError,
  BlockNotFoundError,
  blockKey,
  blockMatches,
  type CID,
  type DurabilityPolicy,
  strongerPolicy,
} from '@mycel/core'
import {
  type BlockRecord,
  type BlockStore,
  type BlockStoreHealth,
  type BlockStoreStats,
  type ListOptions,
  type NodeStateStore,
  type RepairQueueEntry,
  repairQueueEntry,
  repairQueueKey,
} from './block-store.js'

interface Held {
  key: Uint8Array
  bytes: Uint8Array
  policy?: DurabilityPolicy
}

/** In-memory BlockStore with the same contract as RocksBlockStore, for unit tests. */
export class MemoryBlockStore implements BlockStore, NodeStateStore {
  private readonly blocks = new Map<string, Held>()
  private readonly state = new Map<string, Uint8Array>()
  private readonly queue = new Map<string, Buffer>()

  async put(cid: CID, bytes: Uint8Array, policy?: DurabilityPolicy): Promise<void> {
    assertStorableBlock(cid, bytes)
    const held = this.blocks.get(keyOf(cid))
    if (held !== undefined) return this.upgradePolicy(cid, policy)
    this.blocks.set(keyOf(cid), { key: blockKey(cid), bytes: Uint8Array.from(bytes), policy })
  }

  async upgradePolicy(cid: CID, policy: DurabilityPolicy | undefined): Promise<void> {
    const held = this.blocks.get(keyOf(cid))
    if (held === undefined || policy === undefined) return
    held.policy = held.policy === undefined ? policy : strongerPolicy(held.policy, policy)
  }

  async get(cid: CID): Promise<Uint8Array> {
    const held = this.blocks.get(keyOf(cid))
    if (held === undefined) throw new BlockNotFoundError(cid.toString())
    if (!blockMatches(cid, held.bytes)) {
      this.blocks.delete(keyOf(cid))
      throw new BlockCorruptError(cid.toString())
    }
    return held.bytes
  }

  async has(cids: readonly CID[]): Promise<boolean[]> {
    return cids.map((c) => this.blocks.has(keyOf(c)))
  }

  async records(cids: readonly CID[]): Promise<Array<BlockRecord | undefined>> {
    return cids.map((c) => {
      const held = this.blocks.get(keyOf(c))
      return held && record(held)
    })
  }

  async list(options: ListOptions): Promise<BlockRecord[]> {
    const after = options.after && Buffer.from(options.after)
    return [...this.blocks.values()]
      .filter((h) => after === undefined || after.byteLength === 0 || Buffer.compare(h.key, after) > 0)
      .sort((a, b) => Buffer.compare(a.key, b.key))
      .slice(0, options.limit)
      .map(record)
  }

  async delete(cid: CID): Promise<boolean> {
    return this.blocks.delete(keyOf(cid))
  }

  stats(): BlockStoreStats {
    let bytes = 0
    for (const b of this.blocks.values()) bytes += b.bytes.byteLength
    return { blocks: this.blocks.size, bytes }
  }

  health(): BlockStoreHealth {
    return { ok: true }
  }

  async selfCheck(): Promise<BlockStoreHealth> {
    return this.health()
  }

  async close(): Promise<void> {}

  async putUnverifiedForTesting(cid: CID, bytes: Uint8Array): Promise<void> {
    const held = this.blocks.get(keyOf(cid))
    this.blocks.set(keyOf(cid), { key: blockKey(cid), bytes: Uint8Array.from(bytes), policy: held?.policy })
  }

  async getState(name: string): Promise<Uint8Array | undefined> {
    return this.state.get(name)
  }

  async setState(name: string, value: Uint8Array | undefined): Promise<void> {
    if (value === undefined) this.state.delete(name)
    else this.state.set(name, Uint8Array.from(value))
  }

  async enqueueRepairs(entries: readonly RepairQueueEntry[]): Promise<void> {
    for (const e of entries) this.queue.set(repairQueueKey(e).toString('hex'), repairQueueKey(e))
  }

  async dequeueRepairs(entries: readonly RepairQueueEntry[]): Promise<void> {
    for (const e of entries) this.queue.delete(repairQueueKey(e).toString('hex'))
  }

  async nextRepairs(after: RepairQueueEntry | undefined, limit: number): Promise<RepairQueueEntry[]> {
    const from = after && repairQueueKey(after)
    return [...this.queue.values()]
      .filter((k) => from === undefined || Buffer.compare(k, from) > 0)
      .sort(Buffer.compare)
      .slice(0, limit)
      .map(repairQueueEntry)
  }

  repairQueueLength(): number {
    return this.queue.size
  }
}

function record(held: Held): BlockRecord {
  return held.policy === undefined
    ? { key: held.key, size: held.bytes.byteLength }
    : { key: held.key, size: held.bytes.byteLength, policy: held.policy }
}

function keyOf(cid: CID): string {
  return Buffer.from(blockKey(cid)).toString('hex')
}
