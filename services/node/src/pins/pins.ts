import { type ClusterBlockstore, checkDagPresence } from '@mycel/cluster'
import { type CID, formatDurabilityOption, NotPinnedError, parseDurabilityOption } from '@mycel/core'
import type { PinRecord } from '@mycel/proto'
import type { PinStore } from './pin-store.js'
import type { PinReplicator } from './pin-sync.js'

export interface PinOptions {
  /** Durability policy as the APIs spell it ("" = the cluster default). */
  durability: string
  name: string
  signal?: AbortSignal
}

/**
 * Pins as a coordinator sees them: checks, then writes records through the replicator at a
 * majority, and reads after reconciling with a majority. There is no garbage collection yet, so
 * a pin protects nothing today: it records intent (what to keep, and with which durability) for
 * the repair and collection that will act on it.
 */
export class Pins {
  constructor(
    private readonly store: PinStore,
    private readonly replicator: PinReplicator,
    private readonly cluster: ClusterBlockstore,
    private readonly nodeId: string,
  ) {}

  /** The policy text recorded for `durability` (validated against the members' count). */
  canonicalDurability(durability: string): string {
    return formatDurabilityOption(parseDurabilityOption(durability, this.cluster.nodes.length))
  }

  /** Pins after checking that the whole DAG is stored (BlockNotFoundError names what is missing). */
  async pin(cid: CID, opts: PinOptions): Promise<{ blocks: number }> {
    const durability = this.canonicalDurability(opts.durability)
    const { blocks } = await checkDagPresence(this.cluster, cid, { signal: opts.signal })
    await this.record([cid], { ...opts, durability })
    return { blocks }
  }

  /** Pins DAGs this node has just written at the write quorum (Add): no walk needed. */
  async pinWritten(cids: readonly CID[], opts: PinOptions): Promise<void> {
    await this.record(cids, { ...opts, durability: this.canonicalDurability(opts.durability) })
  }

  async unpin(cid: CID, signal?: AbortSignal): Promise<void> {
    await this.replicator.readQuorum(signal)
    const current = this.store.set.get(cid)
    if (current === undefined || !current.pinned) throw new NotPinnedError(cid.toString())
    await this.replicator.write([this.newRecord(cid, false, '', '')], signal)
  }

  /** Pins of `cids` (NotPinnedError for one that is not), or every pin, as a majority knows them. */
  async list(cids: readonly CID[], signal?: AbortSignal): Promise<PinRecord[]> {
    await this.replicator.readQuorum(signal)
    if (cids.length === 0) return this.store.set.pins()
    return cids.map((cid) => {
      const r = this.store.set.get(cid)
      if (r === undefined || !r.pinned) throw new NotPinnedError(cid.toString())
      return r
    })
  }

  /** Pins this node holds now (no quorum read), for status. */
  get localCount(): number {
    return this.store.set.size
  }

  private async record(cids: readonly CID[], opts: PinOptions): Promise<void> {
    const records = cids.map((cid) => this.newRecord(cid, true, opts.durability, opts.name))
    await this.replicator.write(records, opts.signal)
  }

  private newRecord(cid: CID, pinned: boolean, durability: string, name: string): PinRecord {
    return {
      cid: Buffer.from(cid.bytes),
      pinned,
      durability,
      name,
      timestamp: this.store.nextTimestamp(),
      origin: this.nodeId,
    }
  }
}
