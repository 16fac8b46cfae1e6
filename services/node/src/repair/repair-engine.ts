import { createHash } from 'node:crypto'
import {
  BlockCorruptError,
  BlockNotFoundError,
  type CID,
  cidOfKey,
  type DurabilityPolicy,
  isAbortError,
  isRoutable,
  type Logger,
  type Member,
  type MemberMarks,
  type MembershipView,
  memberMarks,
  membersBack,
} from '@mycel/core'
import {
  type BlockRecord,
  type BlockStore,
  type NodeStateStore,
  type RepairQueueEntry,
  repairQueueKey,
} from '../block-store/block-store.js'
import { decide, placementTargets, type RepairDecision, type TargetAnswer } from './decide.js'
import type { PushStream, RepairPeers } from './peers.js'
import type { CodedBlock, ShardEvaluated, ShardRepair } from './shard-repair.js'
import { readStateJson, writeStateJson } from './state-json.js'
import { type Clock, RateMeter, realClock, TokenBucket } from './token-bucket.js'
import { forEachBounded, settleWithin, Wakeup } from './wakeup.js'

export interface RepairEngineConfig {
  /** The record of blocks stored without one. */
  defaultPolicy: DurabilityPolicy
  rateBytesPerSecond: number
  /** Blocks being pushed at once. */
  concurrency: number
  /** Time between passes when the last one found nothing to do. */
  intervalMs: number
  /** Blocks examined per HasBlocks round. */
  scanBatch?: number
  /** Queue entries taken per drain round. */
  drainBatch?: number
  /** First delay before another pass when the last one left work pending; doubles up to intervalMs. */
  rerunDelayMs?: number
  /** Membership changes within this window restart the pass once. */
  debounceMs?: number
}

/** Figures of one pass over this node's blocks (see RepairStats in block.proto). */
export interface PassFigures {
  /** Unix milliseconds. */
  startedAt: number
  completedAt?: number
  scanned: number
  underReplicated: number
  misplaced: number
  unavailable: number
  /** Entries this pass put in the repair queue. */
  enqueued: number
  /** Misplaced copies left for the responsible target to complete first. */
  waiting: number
  /** Erasure-coded blocks this node holds shards of (scanned after the blocks). */
  shardBlocks: number
  /** Shards missing on routable owners, counted by the holder responsible for rebuilding them. */
  shardsMissing: number
  /** Coded blocks with fewer than K shards found, counted by the responsible holder. */
  shardBlocksUnrecoverable: number
  /** Shards held here that belong to another owner. */
  shardsMisplaced: number
}

interface PassState extends PassFigures {
  /** Key after which the scan continues. */
  cursor?: string
  /** Shard key after which the scan of coded blocks continues (once the blocks are done). */
  shardCursor?: string
  /** Placement fingerprint the pass started under; a pass never straddles a membership change. */
  membership: string
}

export interface RepairStatus {
  lastPass?: PassFigures
  /** The pass in progress. */
  pass?: PassFigures
  queued: number
  blocksRepaired: number
  bytesRepaired: number
  blocksHandedOff: number
  bytesHandedOff: number
  shardsRebuilt: number
  shardsHandedOff: number
  rateBytesPerSecond: number
}

/** Counters the engine moves (Prometheus in the node; nothing in unit tests). */
export interface RepairMetricsSink {
  repaired(bytes: number): void
  handedOff(bytes: number): void
  pushFailed(): void
  passCompleted(figures: PassFigures): void
}

export interface RepairEngineComponents {
  store: BlockStore
  state: NodeStateStore
  membership: MembershipView
  /** This node's member record, or undefined while it is not in the membership. */
  self: () => Member | undefined
  peers: RepairPeers
  logger: Logger
  clock?: Clock
  metrics?: RepairMetricsSink
  /** The node's erasure-coded shards, repaired in the same passes, queue and rate limit. */
  shards?: ShardWork
}

/** The shard-specific work (ShardRepair; a fake in unit tests). */
export type ShardWork = Pick<ShardRepair, 'page' | 'evaluate' | 'act'>

/** One block this node holds, with where it belongs and what to do about it. */
interface Evaluated {
  record: BlockRecord
  cid: CID
  policy: DurabilityPolicy
  targets: Member[]
  decision: RepairDecision
}

const STATE_PASS = 'repair/pass'
const STATE_LAST_PASS = 'repair/last-pass'
const STATE_MEMBERSHIP = 'repair/membership'

const NO_SHARD_FIGURES = { shardBlocks: 0, shardsMissing: 0, shardBlocksUnrecoverable: 0, shardsMisplaced: 0 }

const DEFAULT_SCAN_BATCH = 256
const DEFAULT_DRAIN_BATCH = 64
const DEFAULT_RERUN_DELAY_MS = 1_000
const DEFAULT_DEBOUNCE_MS = 1_000
/** How long stop() waits for the loops to notice. */
export const STOP_WAIT_MS = 2_000

/**
 * Background repair and rebalance of the blocks this node holds (see ARCHITECTURE.md, "Repair
 * and scrub").
 *
 * A pass scans the node's records in key order from a persisted cursor. For each page it computes
 * every block's placement over the current membership, asks the targets in one HasBlocks call
 * each which of them hold which blocks, and decides (decide.ts) per block. Blocks that need a
 * copy pushed or a misplaced copy handed off go to a persisted queue ordered by the copies known
 * to survive, so the riskiest blocks are repaired first; the drain takes the queue lowest first,
 * checks each block again (time has passed), pushes copies under the byte-rate limit and drops a
 * misplaced copy only after every target has confirmed it, right before the delete.
 *
 * Erasure-coded shards go through the same machinery (shard-repair.ts does the shard-specific
 * work): a pass continues over the node's shards once its blocks are done (its own cursor in the
 * same persisted pass), coded blocks needing a rebuild or a handoff join the same queue, ranked by
 * the losses they still survive, and rebuilt shards and handoffs spend the same byte budget.
 */
export class RepairEngine {
  private readonly log: Logger
  private readonly clock: Clock
  private readonly bucket: TokenBucket
  private readonly rate: RateMeter
  private readonly passWakeup = new Wakeup()
  private readonly drainWakeup = new Wakeup()
  private readonly abort = new AbortController()
  private stopped = false
  private loops: Promise<void>[] = []
  private pass: PassState | undefined
  private lastPass: PassFigures | undefined
  private restartRequested = false
  private loaded = false
  private drainCursor: RepairQueueEntry | undefined
  private draining = false
  private idleWaiters: Array<() => void> = []
  private unsubscribe: (() => void) | undefined
  private debounce: NodeJS.Timeout | undefined
  /** What the pending debounced trigger will do: restart the running pass, or only follow it. */
  private debouncedRestart = false
  /** A pass is owed after the running one (a member came back: see onMembershipChange). */
  private followUpRequested = false
  /** Members as of the latest membership change (who comes back is measured against it). */
  private marks: MemberMarks = new Map()
  /** Placement fingerprint of the latest pass start (or the one persisted). */
  private placementSeen: string | undefined
  private counters = {
    blocksRepaired: 0,
    bytesRepaired: 0,
    blocksHandedOff: 0,
    bytesHandedOff: 0,
    shardsRebuilt: 0,
    shardsHandedOff: 0,
  }

  constructor(
    private readonly c: RepairEngineComponents,
    private readonly cfg: RepairEngineConfig,
  ) {
    this.log = c.logger.child({ component: 'node:repair' })
    this.clock = c.clock ?? realClock
    this.bucket = new TokenBucket(cfg.rateBytesPerSecond, this.clock)
    this.rate = new RateMeter(10, this.clock)
  }

  /** Loads persisted state and starts the pass and drain loops. */
  async start(): Promise<void> {
    await this.load()
    this.marks = memberMarks(this.c.membership.members())
    this.unsubscribe = this.c.membership.onChange(() => this.onMembershipChange())
    this.loops = [this.passLoop(), this.drainLoop()]
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.unsubscribe?.()
    clearTimeout(this.debounce)
    this.abort.abort()
    this.passWakeup.wake()
    this.drainWakeup.wake()
    // A call to a peer in flight may take up to its deadline: shutdown does not wait for it (the
    // loops check `stopped` before anything that changes state).
    await settleWithin(Promise.all(this.loops), STOP_WAIT_MS)
  }

  status(): RepairStatus {
    const pass = this.pass && figures(this.pass)
    return {
      ...(this.lastPass ? { lastPass: this.lastPass } : {}),
      ...(pass ? { pass } : {}),
      queued: this.c.state.repairQueueLength(),
      ...this.counters,
      rateBytesPerSecond: this.rate.perSecond(),
    }
  }

  /** Starts a new pass now (a trigger from outside: membership, operators, tests). */
  trigger(): void {
    this.restartRequested = this.pass !== undefined
    this.passWakeup.wake()
  }

  // Loading and persistence

  private async load(): Promise<void> {
    if (this.loaded) return
    this.loaded = true
    const pass = await readStateJson<PassState>(this.c.state, STATE_PASS)
    const last = await readStateJson<PassFigures>(this.c.state, STATE_LAST_PASS)
    // Figures persisted before shards were counted lack those fields.
    if (last) this.lastPass = { ...NO_SHARD_FIGURES, ...last }
    if (pass) this.pass = { ...NO_SHARD_FIGURES, ...pass }
    const seen = await this.c.state.getState(STATE_MEMBERSHIP)
    if (seen !== undefined) this.placementSeen = Buffer.from(seen).toString()
  }

  /** How long to wait before the first pass after a start. */
  private initialDelay(): number {
    if (this.pass !== undefined) return 0 // resume the interrupted pass
    // The placement changed while this node was down (a member joined or was declared dead
    // meanwhile): rebalance at once.
    if (this.placementSeen !== this.fingerprint()) return 0
    if (this.lastPass === undefined) return 0
    return Math.max(0, this.lastPass.startedAt + this.cfg.intervalMs - Date.now())
  }

  /** Identity of the placement: what every block's targets depend on. */
  private fingerprint(): string {
    const parts = this.c.membership
      .placementMembers()
      .map((m) => `${m.id}\u0000${m.zone}\u0000${m.weight}`)
      .sort()
    return createHash('sha256').update(parts.join('\n')).digest('hex')
  }

  /**
   * A placement change (a member joined or was declared dead) restarts the pass: every block's
   * targets may have moved. A member that came back (routable again, or with a higher incarnation:
   * it restarted, or refuted a suspicion, so it was away for a moment) may have missed writes that
   * went to the next node in rank order: a pass after the running one takes those copies home
   * within seconds instead of the interval. It does not restart the running pass, so suspicions
   * that come and go on a loaded cluster cannot keep a pass from ever completing. Members leaving
   * on purpose change neither: their data is expected back.
   */
  private onMembershipChange(): void {
    const members = this.c.membership.members()
    const back = membersBack(this.marks, members).length > 0
    this.marks = memberMarks(members)
    const placementChanged = this.placementSeen !== this.fingerprint()
    if (!back && !placementChanged) return
    this.debouncedRestart ||= placementChanged
    clearTimeout(this.debounce)
    this.debounce = setTimeout(() => {
      const restart = this.debouncedRestart
      this.debouncedRestart = false
      if (restart) this.trigger()
      else this.followUp()
    }, this.cfg.debounceMs ?? DEFAULT_DEBOUNCE_MS).unref()
  }

  /** Another pass once the running one completes (now, when none runs). */
  private followUp(): void {
    this.followUpRequested = true
    this.passWakeup.wake()
  }

  // The pass loop

  private async passLoop(): Promise<void> {
    let delay = this.initialDelay()
    const firstRerun = this.cfg.rerunDelayMs ?? DEFAULT_RERUN_DELAY_MS
    let rerun = firstRerun
    while (!this.stopped) {
      await this.passWakeup.wait(delay)
      if (this.stopped) break
      let outcome: Awaited<ReturnType<RepairEngine['runPass']>> | 'failed'
      try {
        outcome = await this.runPass()
      } catch (err) {
        if (this.stopped) break
        this.log.error({ err }, 'repair pass failed')
        outcome = 'failed'
      }
      if (outcome === 'restarted') {
        delay = 0
        continue
      }
      if (outcome === 'not-member') {
        // Not routable itself (joining, or being declared dead): wait until it is again.
        delay = rerun
        rerun = Math.min(rerun * 2, this.cfg.intervalMs)
        continue
      }
      await this.drainIdle()
      if (this.followUpRequested) {
        this.followUpRequested = false
        delay = 0
        continue
      }
      const last = this.lastPass
      const pending =
        outcome === 'failed' || (last?.enqueued ?? 0) + (last?.waiting ?? 0) + (last?.unavailable ?? 0) > 0
      // Work left (queued pushes done now, handoffs waiting on another node, targets that did not
      // answer, such as a node back in gossip before its new address is dialled): look again
      // soon, backing off while it stays, so a pass converges in seconds but never spins.
      delay = pending ? rerun : this.cfg.intervalMs
      rerun = pending ? Math.min(rerun * 2, this.cfg.intervalMs) : firstRerun
    }
  }

  /**
   * One pass over this node's blocks from the persisted cursor (a restart resumes where it
   * stopped). Restarts from the beginning when membership changes meanwhile.
   */
  async runPass(): Promise<'completed' | 'restarted' | 'stopped' | 'not-member'> {
    await this.load()
    const fingerprint = this.fingerprint()
    this.restartRequested = false
    if (this.pass === undefined || this.pass.membership !== fingerprint) {
      this.pass = {
        startedAt: Date.now(),
        scanned: 0,
        underReplicated: 0,
        misplaced: 0,
        unavailable: 0,
        enqueued: 0,
        waiting: 0,
        ...NO_SHARD_FIGURES,
        membership: fingerprint,
      }
      // A pass from the start covers what a follow-up was requested for.
      this.followUpRequested = false
      this.placementSeen = fingerprint
      await this.c.state.setState(STATE_MEMBERSHIP, Buffer.from(fingerprint))
    }
    const pass = this.pass
    const scanBatch = this.cfg.scanBatch ?? DEFAULT_SCAN_BATCH
    for (;;) {
      const interrupted = await this.interrupted()
      if (interrupted) return interrupted
      const after = pass.cursor === undefined ? undefined : Buffer.from(pass.cursor, 'hex')
      const page = await this.c.store.list({ after, limit: scanBatch })
      if (page.length === 0) break
      if (!(await this.scanPage(page, pass))) return 'not-member'
      pass.cursor = Buffer.from((page.at(-1) as BlockRecord).key).toString('hex')
      await writeStateJson(this.c.state, STATE_PASS, pass)
    }
    // Then the coded blocks this node holds shards of, from their own cursor.
    for (const shards = this.c.shards; shards !== undefined; ) {
      const interrupted = await this.interrupted()
      if (interrupted) return interrupted
      const after = pass.shardCursor === undefined ? undefined : Buffer.from(pass.shardCursor, 'hex')
      const page = await shards.page(after, scanBatch)
      if (page.last === undefined) break
      if (!(await this.scanShardPage(page.blocks, pass))) return 'not-member'
      pass.shardCursor = page.last.toString('hex')
      await writeStateJson(this.c.state, STATE_PASS, pass)
    }
    const completedAt = Date.now()
    pass.completedAt = completedAt
    this.lastPass = figures(pass)
    this.pass = undefined
    await writeStateJson(this.c.state, STATE_LAST_PASS, this.lastPass)
    await writeStateJson(this.c.state, STATE_PASS, undefined)
    this.c.metrics?.passCompleted(this.lastPass)
    this.log.info({ ...this.lastPass, durationMs: completedAt - pass.startedAt }, 'repair pass completed')
    return 'completed'
  }

  /** Why the pass must end now: the engine stops, or membership changed (the pass starts over). */
  private async interrupted(): Promise<'stopped' | 'restarted' | undefined> {
    if (this.stopped) return 'stopped'
    if (!this.restartRequested) return undefined
    this.pass = undefined
    await writeStateJson(this.c.state, STATE_PASS, undefined)
    return 'restarted'
  }

  /** Examines one page; false when this node cannot decide now (not a routable member). */
  private async scanPage(page: BlockRecord[], pass: PassState): Promise<boolean> {
    const evaluated = await this.evaluate(page)
    if (evaluated === undefined) return false
    const queue: RepairQueueEntry[] = []
    const upgrades: Array<Promise<void>> = []
    for (const e of evaluated) {
      const d = e.decision
      pass.scanned++
      if (d.role === 'misplaced') pass.misplaced++
      if (d.responsible && d.missing.length > 0) pass.underReplicated++
      if (d.responsible && d.unknown.length > 0) pass.unavailable++
      if (d.upgrade) upgrades.push(this.c.store.upgradePolicy(e.cid, d.upgrade))
      if (d.push.length > 0 || d.mayDelete || d.upgrade) queue.push({ copies: d.copies, key: e.record.key })
      else if (d.role === 'misplaced') pass.waiting++
    }
    await Promise.all(upgrades)
    pass.enqueued += queue.length
    await this.enqueue(queue)
    return true
  }

  /** Examines one page of coded blocks; false when this node cannot decide now. */
  private async scanShardPage(blocks: CodedBlock[], pass: PassState): Promise<boolean> {
    const self = this.currentSelf()
    if (self === undefined || !isRoutable(self) || this.c.shards === undefined) return false
    const evaluated = await this.c.shards.evaluate(blocks, self)
    const queue: RepairQueueEntry[] = []
    for (const e of evaluated) {
      const d = e.decision
      pass.shardBlocks++
      pass.shardsMisplaced += d.handOff.length + d.waiting.length
      if (d.responsible) {
        pass.shardsMissing += d.missing.length
        if (d.unrecoverable) pass.shardBlocksUnrecoverable++
      }
      if ((d.responsible && d.missing.length > 0 && !d.unrecoverable) || d.handOff.length > 0) {
        queue.push(shardEntry(e))
      } else if (d.waiting.length > 0) {
        pass.waiting++
      }
    }
    pass.enqueued += queue.length
    await this.enqueue(queue)
    return true
  }

  /**
   * Where each block belongs now and what its targets hold: one HasBlocks call per target for the
   * whole page. A target that cannot be asked or does not answer stays unknown. Undefined when
   * this node is not routable itself (joining, leaving, declared dead): it decides nothing then,
   * since it would see every block as misplaced and hand its data away.
   */
  private async evaluate(records: readonly BlockRecord[]): Promise<Evaluated[] | undefined> {
    const self = this.currentSelf()
    if (self === undefined || !isRoutable(self)) return undefined
    const members = this.c.membership.placementMembers()
    const plans = records.map((record) => {
      const policy = record.policy ?? this.cfg.defaultPolicy
      return {
        record,
        cid: cidOfKey(record.key),
        policy,
        targets: placementTargets(record.key, members, policy),
      }
    })
    const asks = new Map<string, { member: Member; indexes: number[] }>()
    plans.forEach((p, i) => {
      for (const t of p.targets) {
        if (t.id === self.id || !isRoutable(t)) continue
        let ask = asks.get(t.id)
        if (ask === undefined) {
          ask = { member: t, indexes: [] }
          asks.set(t.id, ask)
        }
        ask.indexes.push(i)
      }
    })
    const answers = plans.map(() => new Map<string, TargetAnswer>())
    await Promise.all(
      [...asks.values()].map(async ({ member, indexes }) => {
        try {
          const res = await this.c.peers.has(
            member,
            indexes.map((i) => (plans[i] as (typeof plans)[number]).cid),
          )
          indexes.forEach((i, j) => {
            answers[i]?.set(member.id, res[j] as TargetAnswer)
          })
        } catch (err) {
          this.log.debug({ peer: member.address, err: String(err) }, 'HasBlocks failed; copies there unknown')
        }
      }),
    )
    return plans.map((p, i) => ({
      ...p,
      decision: decide({
        targets: p.targets,
        selfId: self.id,
        policy: p.policy,
        answers: answers[i] as Map<string, TargetAnswer>,
      }),
    }))
  }

  /** This node's record as the membership sees it now (its state may change). */
  private currentSelf(): Member | undefined {
    const self = this.c.self()
    if (self === undefined) return undefined
    return this.c.membership.members().find((m) => m.id === self.id) ?? self
  }

  // The queue and its drain

  private async enqueue(entries: RepairQueueEntry[]): Promise<void> {
    if (entries.length === 0) return
    await this.c.state.enqueueRepairs(entries)
    const cursor = this.drainCursor
    // Something riskier than what the drain is at: start again from the front of the queue.
    if (
      cursor !== undefined &&
      entries.some((e) => Buffer.compare(repairQueueKey(e), repairQueueKey(cursor)) < 0)
    ) {
      this.drainCursor = undefined
    }
    this.drainWakeup.wake()
  }

  private async drainLoop(): Promise<void> {
    while (!this.stopped) {
      let more = false
      try {
        more = await this.drainOnce()
      } catch (err) {
        if (!this.stopped && !isAbortError(err)) this.log.error({ err }, 'repair drain failed')
      }
      if (!more) {
        this.draining = false
        for (const resolve of this.idleWaiters.splice(0)) resolve()
        await this.drainWakeup.wait(Number.POSITIVE_INFINITY)
      }
    }
    for (const resolve of this.idleWaiters.splice(0)) resolve()
  }

  /** Resolves once the queue is empty (or the engine stopped). */
  private drainIdle(): Promise<void> {
    if (this.stopped || (!this.draining && this.c.state.repairQueueLength() === 0)) return Promise.resolve()
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve)
      this.drainWakeup.wake()
    })
  }

  /** Processes one batch of the queue, lowest copies first; false when there was none. */
  async drainOnce(): Promise<boolean> {
    this.draining = true
    const entries = await this.c.state.nextRepairs(
      this.drainCursor,
      this.cfg.drainBatch ?? DEFAULT_DRAIN_BATCH,
    )
    if (entries.length === 0) {
      if (this.drainCursor === undefined) return false
      this.drainCursor = undefined
      return true
    }
    this.drainCursor = entries.at(-1)
    const self = this.currentSelf()
    if (self === undefined || !isRoutable(self)) return false // keep the queue for when this node can act
    // One evaluation per block, even when it was queued twice with different copy counts.
    const unique = new Map<string, CID>()
    const coded = new Map<string, CodedBlock>()
    for (const e of entries) {
      const hex = Buffer.from(e.key).toString('hex')
      if (e.code === undefined) unique.set(hex, cidOfKey(e.key))
      else coded.set(`${hex}/${e.code.k}+${e.code.m}`, { cid: cidOfKey(e.key), key: e.key, ...e.code })
    }
    if (unique.size > 0) {
      const records = (await this.c.store.records([...unique.values()])).filter(
        (r): r is BlockRecord => r !== undefined,
      )
      const evaluated = await this.evaluate(records)
      if (evaluated === undefined) return false
      await this.act(evaluated)
    }
    if (coded.size > 0 && this.c.shards !== undefined) {
      // Checked again: time has passed since the pass queued them.
      await this.actShards(await this.c.shards.evaluate([...coded.values()], self), self)
    }
    await this.c.state.dequeueRepairs(entries)
    return true
  }

  /**
   * Rebuilds missing shards of one coded block and hands off misplaced ones now, outside any pass
   * (the scrubber dropped a corrupt shard of this node's: it is rebuilt at once, whoever ranks
   * first among the holders).
   */
  async repairShardsNow(block: CodedBlock): Promise<number> {
    const self = this.currentSelf()
    if (self === undefined || !isRoutable(self) || this.c.shards === undefined) return 0
    const evaluated = await this.c.shards.evaluate([block], self)
    return (await this.actShards(evaluated, self, true)).rebuilt
  }

  private async actShards(evaluated: ShardEvaluated[], self: Member, force = false) {
    const shards = this.c.shards as ShardWork
    const result = await shards.act(evaluated, self, {
      throttle: (bytes) => this.bucket.take(bytes, this.abort.signal),
      concurrency: this.cfg.concurrency,
      stopped: () => this.stopped,
      force,
    })
    this.rate.add(result.bytes)
    this.counters.shardsRebuilt += result.rebuilt
    this.counters.shardsHandedOff += result.handedOff
    return result
  }

  /** Pushes missing copies (bounded, rate-limited), then hands off misplaced copies. */
  private async act(evaluated: Evaluated[]): Promise<void> {
    const streams = new Map<string, PushStream>()
    const streamFor = (m: Member) => {
      let s = streams.get(m.id)
      if (s === undefined) {
        s = this.c.peers.push(m)
        streams.set(m.id, s)
      }
      return s
    }
    const confirmed = new Map<Evaluated, Set<string>>()
    const requeue: RepairQueueEntry[] = []
    try {
      await forEachBounded(evaluated, this.cfg.concurrency, async (e) => {
        const d = e.decision
        if (d.upgrade) {
          // A stronger record widens the placement: adopt it and decide again with it.
          await this.c.store.upgradePolicy(e.cid, d.upgrade)
          requeue.push({ copies: d.copies, key: e.record.key })
          return
        }
        if (d.push.length === 0 || this.stopped) return
        let bytes: Uint8Array
        try {
          bytes = await this.c.store.get(e.cid)
        } catch (err) {
          // Gone meanwhile (handed off, deleted) or corrupt (dropped by the read; scrub and the
          // other holders restore it): nothing to push from here.
          if (err instanceof BlockNotFoundError || err instanceof BlockCorruptError) return
          throw err
        }
        await this.bucket.take(bytes.byteLength * d.push.length, this.abort.signal)
        const ok = new Set<string>()
        await Promise.all(
          d.push.map(async (t) => {
            try {
              await streamFor(t).put(e.cid, bytes, e.policy)
              ok.add(t.id)
              this.rate.add(bytes.byteLength)
              this.counters.blocksRepaired++
              this.counters.bytesRepaired += bytes.byteLength
              this.c.metrics?.repaired(bytes.byteLength)
            } catch (err) {
              this.c.metrics?.pushFailed()
              this.log.warn(
                { cid: e.cid.toString(), peer: t.address, err: String(err) },
                'repair push failed',
              )
            }
          }),
        )
        confirmed.set(e, ok)
      })
    } finally {
      await Promise.all([...streams.values()].map((s) => s.close().catch(() => undefined)))
    }
    await this.c.state.enqueueRepairs(requeue)
    const handoffs = evaluated.filter((e) => {
      const d = e.decision
      if (d.role !== 'misplaced' || d.unknown.length > 0) return false
      const pushed = confirmed.get(e) ?? new Set<string>()
      return e.targets.every((t) => d.holders.includes(t) || pushed.has(t.id))
    })
    await this.handOff(handoffs)
  }

  /**
   * Drops misplaced copies whose every target holds the block. Checked again right before the
   * delete, against the membership of that moment: the targets must be the same, all routable,
   * and each must confirm it holds the block.
   */
  private async handOff(candidates: Evaluated[]): Promise<void> {
    if (candidates.length === 0 || this.stopped) return
    const self = this.currentSelf()
    if (self === undefined || !isRoutable(self)) return
    const members = this.c.membership.placementMembers()
    const still = candidates.filter((e) => {
      const now = placementTargets(e.record.key, members, e.policy)
      return (
        now.length === e.targets.length &&
        now.every((t, i) => t.id === e.targets[i]?.id && isRoutable(t) && t.id !== self.id)
      )
    })
    const confirmations = new Map<Evaluated, number>()
    const byTarget = new Map<string, { member: Member; blocks: Evaluated[] }>()
    for (const e of still) {
      for (const t of e.targets) {
        const entry = byTarget.get(t.id) ?? { member: t, blocks: [] }
        entry.blocks.push(e)
        byTarget.set(t.id, entry)
      }
    }
    await Promise.all(
      [...byTarget.values()].map(async ({ member, blocks }) => {
        try {
          const res = await this.c.peers.has(
            member,
            blocks.map((b) => b.cid),
          )
          blocks.forEach((b, i) => {
            if (res[i]?.held) confirmations.set(b, (confirmations.get(b) ?? 0) + 1)
          })
        } catch (err) {
          this.log.debug({ peer: member.address, err: String(err) }, 'handoff confirmation failed')
        }
      }),
    )
    for (const e of still) {
      if (this.stopped || confirmations.get(e) !== e.targets.length) continue
      if (await this.c.store.delete(e.cid)) {
        this.counters.blocksHandedOff++
        this.counters.bytesHandedOff += e.record.size
        this.c.metrics?.handedOff(e.record.size)
      }
    }
  }
}

function figures(p: PassFigures): PassFigures {
  return {
    startedAt: p.startedAt,
    ...(p.completedAt !== undefined ? { completedAt: p.completedAt } : {}),
    scanned: p.scanned,
    underReplicated: p.underReplicated,
    misplaced: p.misplaced,
    unavailable: p.unavailable,
    enqueued: p.enqueued,
    waiting: p.waiting,
    shardBlocks: p.shardBlocks,
    shardsMissing: p.shardsMissing,
    shardBlocksUnrecoverable: p.shardBlocksUnrecoverable,
    shardsMisplaced: p.shardsMisplaced,
  }
}

/** The queue entry of a coded block, ranked by the losses it still survives. */
function shardEntry(e: ShardEvaluated): RepairQueueEntry {
  const { key, k, m } = e.block
  return { copies: e.decision.copies, key, code: { k, m } }
}
