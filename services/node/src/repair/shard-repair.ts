import { listShardsOn, type NodeClients, type NodeHandle, repairShards, writeShard } from '@mycel/cluster'
import {
  blockKey,
  type CID,
  cidOfMultihash,
  isRoutable,
  type Logger,
  type Member,
  placeCopies,
} from '@mycel/core'
import type { ShardRef } from '@mycel/proto'
import type { ShardMetrics } from '../shard-store/shard-metrics.js'
import type { ShardStore } from '../shard-store/shard-store.js'
import { decideShards, type ShardDecision } from './decide.js'
import { forEachBounded } from './wakeup.js'

/** An erasure-coded block this node holds shards of, under one code. */
export interface CodedBlock {
  cid: CID
  /** The block's key (its multihash), as in the repair queue. */
  key: Uint8Array
  k: number
  m: number
}

/** A coded block with where its shards belong now and what to do about it. */
export interface ShardEvaluated {
  block: CodedBlock
  /** The K+M owners, in shard order. */
  owners: NodeHandle[]
  /** What each owner answered (this node: its own index); undefined: could not ask. */
  listings: Array<ShardRef[] | undefined>
  decision: ShardDecision
}

/** What one act() did. */
export interface ShardActResult {
  rebuilt: number
  handedOff: number
  /** Shard bytes sent (rebuilt shards and handoffs). */
  bytes: number
}

export interface ShardActOptions {
  /** Waits until `bytes` may be sent: the repair engine's byte-rate limit, shared with blocks. */
  throttle: (bytes: number) => Promise<void>
  concurrency: number
  stopped: () => boolean
  /** Rebuild even when another holder ranks first (scrub dropped this node's own shard). */
  force?: boolean
}

export interface ShardRepairComponents {
  shards: ShardStore
  clients: NodeClients
  logger: Logger
  metrics: ShardMetrics
}

/**
 * The erasure-coded half of repair, driven by the RepairEngine (same pass and cursor, same queue,
 * same rate limit): pages of the coded blocks this node holds shards of, their survey (one
 * ListShards call per owner for a whole page, plus the nodes ranked after the owners for blocks
 * short of K there), and the work a decision calls for: the responsible holder rebuilds missing
 * shards (repairShards: K shards, the block checked against its CID, re-encoded, written to the
 * owners), and a holder of a shard that belongs elsewhere writes it to its owner and drops its
 * own only after the owner, still the owner under the membership of that moment and routable,
 * confirms it holds it.
 */
export class ShardRepair {
  private readonly log: Logger

  constructor(
    private readonly c: ShardRepairComponents,
    private readonly cfg: { rpcTimeoutMs: number },
  ) {
    this.log = c.logger.child({ component: 'node:shard-repair' })
  }

  /**
   * The coded blocks among the next `limit` stored shards after shard key `after`, and the key
   * to continue from (undefined at the end). Keys sort by block, then code: one entry per
   * (block, K, M) of the page.
   */
  async page(after: Buffer | undefined, limit: number): Promise<{ blocks: CodedBlock[]; last?: Buffer }> {
    const entries = await this.c.shards.scan(after, limit)
    const blocks: CodedBlock[] = []
    let previous = ''
    for (const e of entries) {
      const id = `${Buffer.from(e.multihash).toString('hex')}/${e.k}+${e.m}`
      if (id === previous) continue
      previous = id
      blocks.push({ cid: cidOfMultihash(e.multihash), key: e.multihash, k: e.k, m: e.m })
    }
    const last = entries.at(-1)?.key
    return last === undefined ? { blocks } : { blocks, last }
  }

  /**
   * Where each block's shards belong under the current placement and what the owners hold. Blocks
   * the placement has too few members for (fewer than K+M) are left out: nothing can be done.
   */
  async evaluate(blocks: readonly CodedBlock[], self: Member): Promise<ShardEvaluated[]> {
    const nodes = this.c.clients.nodes
    const plans = blocks
      .filter((b) => nodes.length >= b.k + b.m)
      .map((block) => {
        const order = placeCopies(blockKey(block.cid), nodes, 2 * (block.k + block.m))
        return { block, owners: order.slice(0, block.k + block.m), next: order.slice(block.k + block.m) }
      })
    const local = await this.c.shards.list(plans.map((p) => p.block.cid))
    const owned = await this.survey(
      plans.map((p) => p.owners),
      plans.map((p) => p.block.cid),
      self,
    )
    const out = plans.map((p, i) => {
      const mine = (local[i] ?? []).filter((r) => r.k === p.block.k && r.m === p.block.m)
      const listings = p.owners.map((o, j) => (o.id === self.id ? mine : owned[i]?.[j]))
      return { p, mine, listings, decision: this.decide(p.block, p.owners, self, mine, listings) }
    })
    // Short of K on the owners: shards written to the nodes ranked next while an owner was down
    // count too (the read path and repairShards look there as well).
    const short = out.filter((e) => e.decision.unrecoverable)
    if (short.length > 0) {
      const nextListings = await this.survey(
        short.map((e) => e.p.next),
        short.map((e) => e.p.block.cid),
        self,
      )
      short.forEach((e, i) => {
        const elsewhere = (nextListings[i] ?? []).flatMap((refs) =>
          (refs ?? []).filter((r) => r.k === e.p.block.k && r.m === e.p.block.m).map((r) => r.index),
        )
        e.decision = this.decide(e.p.block, e.p.owners, self, e.mine, e.listings, elsewhere)
      })
    }
    return out.map((e) => ({
      block: e.p.block,
      owners: e.p.owners,
      listings: e.listings,
      decision: e.decision,
    }))
  }

  /** Rebuilds what this node is responsible for, then hands off and drops misplaced shards. */
  async act(evaluated: readonly ShardEvaluated[], self: Member, o: ShardActOptions): Promise<ShardActResult> {
    const result: ShardActResult = { rebuilt: 0, handedOff: 0, bytes: 0 }
    const throttle = async (bytes: number) => {
      await o.throttle(bytes)
      result.bytes += bytes
    }
    const handoffs: Array<{ e: ShardEvaluated; index: number }> = []
    await forEachBounded(evaluated, o.concurrency, async (e) => {
      if (o.stopped()) return
      const d = e.decision
      if ((d.responsible || o.force) && d.missing.length > 0) {
        result.rebuilt += await this.rebuild(e, self, throttle, o.force === true || d.role === 'misplaced')
      }
      for (const index of d.handOff) {
        if (await this.sendToOwner(e, index, throttle)) handoffs.push({ e, index })
      }
    })
    if (!o.stopped()) result.handedOff = await this.dropConfirmed(handoffs, self)
    return result
  }

  /** ListShards to each node of `groups[i]` for block `cids[i]`, one call per node. */
  private async survey(
    groups: ReadonlyArray<readonly NodeHandle[]>,
    cids: readonly CID[],
    self: Member,
  ): Promise<Array<Array<ShardRef[] | undefined>>> {
    const asks = new Map<string, { node: NodeHandle; cids: CID[] }>()
    groups.forEach((nodes, i) => {
      for (const node of nodes) {
        if (node.id === self.id) continue
        const ask = asks.get(node.id) ?? { node, cids: [] }
        ask.cids.push(cids[i] as CID)
        asks.set(node.id, ask)
      }
    })
    const answers = new Map<string, Map<string, ShardRef[]>>()
    await Promise.all(
      [...asks.values()].map(async ({ node, cids: asked }) => {
        const listed = await listShardsOn(node, asked, this.cfg.rpcTimeoutMs)
        if (listed === undefined) return
        const byCid = new Map<string, ShardRef[]>()
        asked.forEach((cid, i) => {
          byCid.set(cid.toString(), listed[i] ?? [])
        })
        answers.set(node.id, byCid)
      }),
    )
    return groups.map((nodes, i) => nodes.map((n) => answers.get(n.id)?.get((cids[i] as CID).toString())))
  }

  private decide(
    block: CodedBlock,
    owners: readonly NodeHandle[],
    self: Member,
    mine: readonly ShardRef[],
    listings: ReadonlyArray<ShardRef[] | undefined>,
    elsewhere: readonly number[] = [],
  ): ShardDecision {
    const indices = (refs: readonly ShardRef[] | undefined) =>
      refs?.filter((r) => r.k === block.k && r.m === block.m).map((r) => r.index)
    return decideShards({
      k: block.k,
      m: block.m,
      owners,
      selfId: self.id,
      local: indices(mine) ?? [],
      listings: listings.map(indices),
      elsewhere,
    })
  }

  /** repairShards for one block, from the survey; the number of shards written. */
  private async rebuild(
    e: ShardEvaluated,
    self: Member,
    throttle: (bytes: number) => Promise<void>,
    force: boolean,
  ): Promise<number> {
    const { cid, k, m } = e.block
    try {
      const { shards: local } = await this.c.shards.get(cid, { k, m })
      const report = await repairShards(
        { cid, k, m, nodes: this.c.clients.nodes, self: self.id, force, local, listings: e.listings },
        { rpcTimeoutMs: this.cfg.rpcTimeoutMs, logger: this.log, throttle },
      )
      this.c.metrics.repairBlocksChecked.inc()
      if (report.rebuilt.length > 0) {
        this.c.metrics.repairs.inc({ result: 'rebuilt' }, report.rebuilt.length)
        this.log.info(
          { cid: cid.toString(), rebuilt: report.rebuilt, k, m },
          'rebuilt missing shards on their owners',
        )
      }
      if (report.unrecoverable) this.c.metrics.repairs.inc({ result: 'unrecoverable' })
      const failed =
        report.skipped || report.unrecoverable ? 0 : report.missing.length - report.rebuilt.length
      if (failed > 0) this.c.metrics.repairs.inc({ result: 'failed' }, failed)
      return report.rebuilt.length
    } catch (err) {
      this.c.metrics.repairs.inc({ result: 'failed' })
      this.log.warn({ cid: cid.toString(), err: String(err) }, 'shard repair of a block failed')
      return 0
    }
  }

  /** Makes sure the owner of shard `index` holds it (writing this node's verified copy there). */
  private async sendToOwner(
    e: ShardEvaluated,
    index: number,
    throttle: (bytes: number) => Promise<void>,
  ): Promise<boolean> {
    const { cid, k, m } = e.block
    const owner = e.owners[index] as NodeHandle
    const has = e.listings[index]?.some((r) => r.k === k && r.m === m && r.index === index) ?? false
    if (has) return true
    // A shard that fails verification here is dropped by the store (scrub and repair restore it).
    const [shard] = (await this.c.shards.get(cid, { k, m, indices: [index] })).shards
    if (shard === undefined) return false
    try {
      await throttle(shard.bytes.byteLength)
      await writeShard(owner, cid, index, shard.bytes, {
        rpcTimeoutMs: this.cfg.rpcTimeoutMs,
        logger: this.log,
      })
      return true
    } catch (err) {
      this.c.metrics.repairs.inc({ result: 'failed' })
      this.log.warn(
        { cid: cid.toString(), shard: index, peer: owner.address, err: String(err) },
        'shard handoff failed',
      )
      return false
    }
  }

  /**
   * Drops the handed-off shards whose owner confirms it holds them, checked right before the
   * delete against the membership of that moment: the owner must still be the shard's owner and
   * routable, and this node not its owner.
   */
  private async dropConfirmed(
    handoffs: ReadonlyArray<{ e: ShardEvaluated; index: number }>,
    self: Member,
  ): Promise<number> {
    const nodes = this.c.clients.nodes
    const byOwner = new Map<
      string,
      { node: NodeHandle; items: Array<{ e: ShardEvaluated; index: number }> }
    >()
    for (const h of handoffs) {
      const { cid, k, m } = h.e.block
      const now = placeCopies(blockKey(cid), nodes, k + m)[h.index]
      if (now === undefined || now.id !== h.e.owners[h.index]?.id || now.id === self.id || !isRoutable(now)) {
        continue
      }
      const entry = byOwner.get(now.id) ?? { node: now, items: [] }
      entry.items.push(h)
      byOwner.set(now.id, entry)
    }
    let dropped = 0
    await Promise.all(
      [...byOwner.values()].map(async ({ node, items }) => {
        const listed = await listShardsOn(
          node,
          items.map((h) => h.e.block.cid),
          this.cfg.rpcTimeoutMs,
        )
        if (listed === undefined) return
        for (const [i, { e, index }] of items.entries()) {
          const { cid, k, m } = e.block
          if (!listed[i]?.some((r) => r.k === k && r.m === m && r.index === index)) continue
          if ((await this.c.shards.delete(cid, [{ k, m, index }])) > 0) {
            dropped++
            this.c.metrics.repairs.inc({ result: 'handed_off' })
            this.log.info(
              { cid: cid.toString(), shard: index, peer: node.address },
              'misplaced shard handed off to its owner',
            )
          }
        }
      }),
    )
    return dropped
  }
}
