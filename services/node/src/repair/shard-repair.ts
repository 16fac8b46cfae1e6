import { handOffShard, listShardsOn, type NodeClients, type NodeHandle, repairShards } from '@mycel/cluster'
import {
  blockKey,
  type CID,
  cidOfMultihash,
  isAbortError,
  isRoutable,
  type Logger,
  type Member,
  type MembershipView,
  placeCopies,
} from '@mycel/core'
import type { ShardRef } from '@mycel/proto'
import type { NodeStateStore } from '../block-store/block-store.js'
import type { ShardMetrics } from '../shard-store/shard-metrics.js'
import type { ShardStore, StoredShardEntry } from '../shard-store/shard-store.js'
import { STOP_WAIT_MS } from './repair-engine.js'
import { readStateJson, writeStateJson } from './state-json.js'
import { TokenBucket } from './token-bucket.js'
import { settleWithin, Wakeup } from './wakeup.js'

export interface ShardRepairConfig {
  /** Time between passes when the last one left nothing to do (MYCEL_REPAIR_INTERVAL_MS). */
  intervalMs: number
  /** Bytes per second rebuilt shards and handoffs may send (MYCEL_REPAIR_RATE_BYTES). */
  rateBytesPerSecond: number
  /** Shard bytes per second scrub re-verifies; 0 turns shard scrubbing off (MYCEL_SCRUB_RATE_BYTES). */
  scrubRateBytesPerSecond: number
  /** Pause between two complete scrub passes (MYCEL_SCRUB_INTERVAL_MS). */
  scrubIntervalMs: number
  rpcTimeoutMs: number
  /** Blocks surveyed per page: one ListShards call per owner covers the page. */
  pageSize?: number
}

export interface ShardRepairComponents {
  shards: ShardStore
  state: NodeStateStore
  clients: NodeClients
  membership: MembershipView
  /** This node's member record, or undefined while it is not in the membership. */
  self: () => Member | undefined
  logger: Logger
  metrics: ShardMetrics
}

/** Figures of the last complete pass over this node's shards. */
export interface ShardPassFigures {
  startedAt: number
  completedAt: number
  /** Erasure-coded blocks this node holds shards of. */
  blocks: number
  /** Shards missing on reachable owners, counted by the node responsible for the block. */
  missing: number
  /** Blocks with fewer than K shards left. */
  unrecoverable: number
}

export interface ShardRepairStatus {
  lastPass?: ShardPassFigures
  rebuilt: number
  handedOff: number
}

const STATE_SCRUB_LAST = 'shard-scrub/last-completed'
const DEFAULT_PAGE = 64
const FIRST_RERUN_MS = 1_000

/**
 * Repair, handoff and scrub of this node's erasure-coded shards, run by the repair component
 * beside the block repair engine and scrubber, with the same settings and triggers.
 *
 * A pass walks the node's shard index in key order, a page of blocks at a time. For each page
 * it asks every owner of those blocks (placeCopies(key, members, K+M)) with one ListShards call
 * which shards it holds; a shard held here whose owner is another node is handed off (written
 * there, then dropped here); a block whose owners lack shards is rebuilt by the first owner
 * holding any of its shards (repairShards): from K shards, checked against the block's CID,
 * re-encoded, written under the repair byte rate. Membership changes start a pass at once; a
 * pass that left work behind is followed by another soon, backing off to the interval.
 *
 * Scrub re-reads every stored shard at the scrub byte rate; a shard that fails its checksum is
 * dropped (mycel_node_shards_corrupt_total{found_by="scrub"}) and rebuilt at once.
 */
export class ShardRepair {
  private readonly log: Logger
  private readonly bucket: TokenBucket
  private readonly passWakeup = new Wakeup()
  private readonly scrubWakeup = new Wakeup()
  private readonly abort = new AbortController()
  private stopped = false
  private loops: Promise<void>[] = []
  private unsubscribe: (() => void) | undefined
  private lastPass: ShardPassFigures | undefined
  private readonly counters = { rebuilt: 0, handedOff: 0 }

  constructor(
    private readonly c: ShardRepairComponents,
    private readonly cfg: ShardRepairConfig,
  ) {
    this.log = c.logger.child({ component: 'node:shard-repair' })
    this.bucket = new TokenBucket(cfg.rateBytesPerSecond)
  }

  start(): void {
    this.unsubscribe = this.c.membership.onChange(() => this.trigger())
    this.loops = [this.passLoop()]
    if (this.cfg.scrubRateBytesPerSecond > 0) this.loops.push(this.scrubLoop())
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.unsubscribe?.()
    this.abort.abort()
    this.passWakeup.wake()
    this.scrubWakeup.wake()
    await settleWithin(Promise.all(this.loops), STOP_WAIT_MS)
  }

  /** Starts a pass now. */
  trigger(): void {
    this.passWakeup.wake()
  }

  status(): ShardRepairStatus {
    return { ...(this.lastPass ? { lastPass: this.lastPass } : {}), ...this.counters }
  }

  private async passLoop(): Promise<void> {
    let rerun = FIRST_RERUN_MS
    let delay = 0
    while (!this.stopped) {
      await this.passWakeup.wait(delay)
      if (this.stopped) break
      let pending = false
      try {
        const figures = await this.runPass()
        pending = figures === undefined || figures.missing > 0
      } catch (err) {
        if (this.stopped || isAbortError(err)) break
        this.log.error({ err: String(err) }, 'shard repair pass failed')
        pending = true
      }
      delay = pending ? rerun : this.cfg.intervalMs
      rerun = pending ? Math.min(rerun * 2, this.cfg.intervalMs) : FIRST_RERUN_MS
    }
  }

  /** One pass over this node's shards; undefined when this node cannot act now. */
  async runPass(): Promise<ShardPassFigures | undefined> {
    const self = this.currentSelf()
    // Not routable itself (joining, leaving, declared dead): it would see every shard as
    // misplaced and hand its data away, so it decides nothing.
    if (self === undefined || !isRoutable(self)) return undefined
    const figures: ShardPassFigures = {
      startedAt: Date.now(),
      completedAt: 0,
      blocks: 0,
      missing: 0,
      unrecoverable: 0,
    }
    let after: Buffer | undefined
    let previous = ''
    for (;;) {
      if (this.stopped) return undefined
      const entries = await this.c.shards.scan(after, this.cfg.pageSize ?? DEFAULT_PAGE)
      if (entries.length === 0) break
      after = entries.at(-1)?.key
      // Keys sort by block, then code: one group per (block, K, M).
      const groups: StoredShardEntry[] = []
      for (const e of entries) {
        const id = `${Buffer.from(e.multihash).toString('hex')}/${e.k}+${e.m}`
        if (id === previous) continue
        previous = id
        groups.push(e)
      }
      await this.repairPage(groups, self, figures)
    }
    figures.completedAt = Date.now()
    this.lastPass = figures
    if (figures.blocks > 0) this.log.info(figures, 'shard repair pass completed')
    return figures
  }

  /** Surveys a page of blocks with one ListShards call per owner, then repairs each. */
  private async repairPage(
    groups: StoredShardEntry[],
    self: Member,
    figures: ShardPassFigures,
  ): Promise<void> {
    const nodes = this.c.clients.nodes
    const plans = groups
      .filter((g) => nodes.length >= g.k + g.m) // too few members to place the shards: nothing to do
      .map((g) => {
        const cid = cidOfMultihash(g.multihash)
        return { g, cid, owners: placeCopies(blockKey(cid), nodes, g.k + g.m).slice(0, g.k + g.m) }
      })
    const asks = new Map<string, { node: NodeHandle; cids: CID[] }>()
    for (const p of plans) {
      for (const o of p.owners) {
        const ask = asks.get(o.id) ?? { node: o, cids: [] }
        if (!ask.cids.includes(p.cid)) ask.cids.push(p.cid)
        asks.set(o.id, ask)
      }
    }
    const answers = new Map<string, Map<string, ShardRef[]>>()
    await Promise.all(
      [...asks.values()].map(async ({ node, cids }) => {
        const listed = await listShardsOn(node, cids, this.cfg.rpcTimeoutMs)
        if (listed === undefined) return
        const byCid = new Map<string, ShardRef[]>()
        for (const [i, cid] of cids.entries()) byCid.set(cid.toString(), listed[i] ?? [])
        answers.set(node.id, byCid)
      }),
    )
    for (const p of plans) {
      if (this.stopped) return
      figures.blocks++
      const listings = p.owners.map((o) => answers.get(o.id)?.get(p.cid.toString()))
      await this.repairBlock(p.cid, p.g.k, p.g.m, self, false, listings, figures)
    }
  }

  private async repairBlock(
    cid: CID,
    k: number,
    m: number,
    self: Member,
    force: boolean,
    listings: ReadonlyArray<ShardRef[] | undefined> | undefined,
    figures?: ShardPassFigures,
  ): Promise<void> {
    const nodes = this.c.clients.nodes
    const repair = {
      rpcTimeoutMs: this.cfg.rpcTimeoutMs,
      logger: this.log,
      throttle: (bytes: number) => this.bucket.take(bytes, this.abort.signal),
    }
    try {
      // Shard data is read only to hand a shard off; the survey needs the index alone.
      const owners = placeCopies(blockKey(cid), nodes, k + m)
      const [refs = []] = await this.c.shards.list([cid])
      let handed = false
      for (const ref of refs) {
        if (ref.k !== k || ref.m !== m || owners[ref.index]?.id === self.id) continue
        const { shards } = await this.c.shards.get(cid, { k, m, indices: [ref.index] })
        for (const shard of shards) {
          const drop = () => this.c.shards.delete(cid, [shard]).then(() => undefined)
          const result = await handOffShard(shard, nodes, self.id, drop, repair)
          if (result === 'handed_off' || result === 'owner_has') {
            handed = true
            this.counters.handedOff++
            this.c.metrics.repairs.inc({ result: 'handed_off' })
            this.log.info(
              { cid: cid.toString(), shard: shard.index, result },
              'misplaced shard handed off to its owner',
            )
          }
        }
      }
      // A handoff above changed what the owners hold: survey again.
      const report = await repairShards(
        { cid, k, m, nodes, self: self.id, force, ...(listings && !handed ? { listings } : {}) },
        repair,
      )
      this.c.metrics.repairBlocksChecked.inc()
      if (!report.skipped && figures) figures.missing += report.missing.length
      if (report.rebuilt.length > 0) {
        this.counters.rebuilt += report.rebuilt.length
        this.c.metrics.repairs.inc({ result: 'rebuilt' }, report.rebuilt.length)
        this.log.info(
          { cid: cid.toString(), rebuilt: report.rebuilt, k, m },
          'rebuilt missing shards on their owners',
        )
      }
      if (report.unrecoverable) {
        if (figures) figures.unrecoverable++
        this.c.metrics.repairs.inc({ result: 'unrecoverable' })
      }
      const failed =
        report.skipped || report.unrecoverable ? 0 : report.missing.length - report.rebuilt.length
      if (failed > 0) this.c.metrics.repairs.inc({ result: 'failed' }, failed)
    } catch (err) {
      if (isAbortError(err) || this.stopped) throw err
      this.c.metrics.repairs.inc({ result: 'failed' })
      this.log.warn({ cid: cid.toString(), err: String(err) }, 'shard repair of a block failed')
    }
  }

  private async scrubLoop(): Promise<void> {
    const last = await readStateJson<number>(this.c.state, STATE_SCRUB_LAST)
    let delay = last === undefined ? 0 : Math.max(0, last + this.cfg.scrubIntervalMs - Date.now())
    const bucket = new TokenBucket(this.cfg.scrubRateBytesPerSecond)
    while (!this.stopped) {
      await this.scrubWakeup.wait(delay)
      if (this.stopped) break
      try {
        await this.scrubPass(bucket)
        await writeStateJson(this.c.state, STATE_SCRUB_LAST, Date.now())
        this.c.metrics.scrubPasses.inc()
        delay = this.cfg.scrubIntervalMs
      } catch (err) {
        if (this.stopped || isAbortError(err)) break
        this.log.error({ err: String(err) }, 'shard scrub pass failed; retrying in 5 s')
        delay = 5_000
      }
    }
  }

  /** Verifies every stored shard at the scrub rate; a corrupt one is dropped and rebuilt now. */
  private async scrubPass(bucket: TokenBucket): Promise<void> {
    let after: Buffer | undefined
    for (;;) {
      const entries = await this.c.shards.scan(after, DEFAULT_PAGE)
      if (entries.length === 0) return
      for (const entry of entries) {
        if (this.stopped) return
        await bucket.take(entry.size, this.abort.signal)
        const good = await this.c.shards.verify(entry)
        this.c.metrics.scrubbedBytes.inc(entry.size)
        const self = this.currentSelf()
        if (!good && self !== undefined && isRoutable(self)) {
          // The store counted it and dropped it: rebuild this node's shard from K others.
          await this.repairBlock(cidOfMultihash(entry.multihash), entry.k, entry.m, self, true, undefined)
        }
      }
      after = entries.at(-1)?.key
    }
  }

  private currentSelf(): Member | undefined {
    const self = this.c.self()
    if (self === undefined) return undefined
    return this.c.membership.members().find((m) => m.id === self.id) ?? self
  }
}
