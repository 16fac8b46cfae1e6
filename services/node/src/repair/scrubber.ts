import {
  BlockCorruptError,
  BlockNotFoundError,
  blockMatches,
  type CID,
  cidOfKey,
  type DurabilityPolicy,
  isAbortError,
  isRoutable,
  type Logger,
  type Member,
  type MembershipView,
  placeCopies,
  strongerPolicy,
} from '@mycel/core'
import type { BlockRecord, BlockStore, NodeStateStore } from '../block-store/block-store.js'
import type { RepairPeers } from './peers.js'
import { STOP_WAIT_MS } from './repair-engine.js'
import { readStateJson, writeStateJson } from './state-json.js'
import { type Clock, realClock, TokenBucket } from './token-bucket.js'
import { settleWithin, Wakeup } from './wakeup.js'

export interface ScrubberConfig {
  defaultPolicy: DurabilityPolicy
  /** Bytes per second re-verified; 0 turns the scrubber off. */
  rateBytesPerSecond: number
  /** Pause between two complete passes. */
  intervalMs: number
  /** Records read per page. */
  pageSize?: number
}

export interface ScrubberComponents {
  store: BlockStore
  state: NodeStateStore
  membership: MembershipView
  self: () => Member | undefined
  peers: RepairPeers
  logger: Logger
  clock?: Clock
  metrics?: ScrubMetricsSink
}

export interface ScrubMetricsSink {
  verified(bytes: number): void
  corruptFound(): void
  corruptRepaired(): void
  scrubPassCompleted(): void
}

interface ScrubPass {
  startedAt: number
  cursor?: string
  blocks: number
  bytes: number
}

export interface ScrubStatus {
  pass?: { startedAt: number; blocks: number; bytes: number }
  lastPassCompletedAt?: number
  corruptFound: number
  corruptRepaired: number
  rateBytesPerSecond: number
}

const STATE_PASS = 'scrub/pass'
const STATE_LAST = 'scrub/last-completed'
const DEFAULT_PAGE = 32

/**
 * Re-verifies every stored block against its address at a bounded byte rate, resuming from a
 * persisted cursor after a restart. A copy that fails is dropped by the store's verified read;
 * the scrubber then fetches a good copy from the block's placement peers (verified here), and
 * writes it back with the stronger of the two records.
 */
export class Scrubber {
  private readonly log: Logger
  private readonly bucket: TokenBucket | undefined
  private readonly wakeup = new Wakeup()
  private readonly abort = new AbortController()
  private stopped = false
  private loop: Promise<void> = Promise.resolve()
  private pass: ScrubPass | undefined
  private lastCompletedAt: number | undefined
  private counters = { corruptFound: 0, corruptRepaired: 0 }

  constructor(
    private readonly c: ScrubberComponents,
    private readonly cfg: ScrubberConfig,
  ) {
    this.log = c.logger.child({ component: 'node:scrub' })
    this.bucket =
      cfg.rateBytesPerSecond > 0 ? new TokenBucket(cfg.rateBytesPerSecond, c.clock ?? realClock) : undefined
  }

  async start(): Promise<void> {
    if (this.bucket === undefined) return
    this.pass = await readStateJson<ScrubPass>(this.c.state, STATE_PASS)
    this.lastCompletedAt = (await readStateJson<{ at: number }>(this.c.state, STATE_LAST))?.at
    this.loop = this.run()
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.abort.abort()
    this.wakeup.wake()
    await settleWithin(this.loop, STOP_WAIT_MS)
  }

  status(): ScrubStatus {
    return {
      ...(this.pass
        ? { pass: { startedAt: this.pass.startedAt, blocks: this.pass.blocks, bytes: this.pass.bytes } }
        : {}),
      ...(this.lastCompletedAt !== undefined ? { lastPassCompletedAt: this.lastCompletedAt } : {}),
      ...this.counters,
      rateBytesPerSecond: this.cfg.rateBytesPerSecond,
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.pass === undefined) {
          const due = (this.lastCompletedAt ?? 0) + this.cfg.intervalMs - Date.now()
          if (due > 0) await this.wakeup.wait(due)
          if (this.stopped) break
          this.pass = { startedAt: Date.now(), blocks: 0, bytes: 0 }
        }
        if (!(await this.scrubPage(this.pass))) await this.completePass()
      } catch (err) {
        if (this.stopped || isAbortError(err)) break
        this.log.error({ err }, 'scrub failed; retrying shortly')
        await this.wakeup.wait(5_000)
      }
    }
  }

  /** Verifies the next page of the pass; false when the pass has reached the end. */
  async scrubPage(pass: ScrubPass): Promise<boolean> {
    const after = pass.cursor === undefined ? undefined : Buffer.from(pass.cursor, 'hex')
    const page = await this.c.store.list({ after, limit: this.cfg.pageSize ?? DEFAULT_PAGE })
    if (page.length === 0) return false
    for (const record of page) {
      if (this.stopped) return true
      await this.bucket?.take(record.size, this.abort.signal)
      await this.verify(record)
      pass.blocks++
      pass.bytes += record.size
      pass.cursor = Buffer.from(record.key).toString('hex')
      this.c.metrics?.verified(record.size)
    }
    await writeStateJson(this.c.state, STATE_PASS, pass)
    return true
  }

  /** Runs a whole pass now (tests). */
  async runPass(): Promise<void> {
    const pass: ScrubPass = { startedAt: Date.now(), blocks: 0, bytes: 0 }
    this.pass = pass
    while (await this.scrubPage(pass)) {}
    await this.completePass()
  }

  private async completePass(): Promise<void> {
    const pass = this.pass
    this.lastCompletedAt = Date.now()
    this.pass = undefined
    await writeStateJson(this.c.state, STATE_LAST, { at: this.lastCompletedAt })
    await writeStateJson(this.c.state, STATE_PASS, undefined)
    this.c.metrics?.scrubPassCompleted()
    this.log.info({ blocks: pass?.blocks, bytes: pass?.bytes, ...this.counters }, 'scrub pass completed')
  }

  private async verify(record: BlockRecord): Promise<void> {
    const cid = cidOfKey(record.key)
    try {
      await this.c.store.get(cid)
      return
    } catch (err) {
      if (err instanceof BlockNotFoundError) return // deleted meanwhile (handoff)
      if (!(err instanceof BlockCorruptError)) throw err
    }
    // The store dropped the bad copy; put a good one back.
    this.counters.corruptFound++
    this.c.metrics?.corruptFound()
    const policy = record.policy ?? this.cfg.defaultPolicy
    if (await this.refetch(cid, record.key, policy)) {
      this.counters.corruptRepaired++
      this.c.metrics?.corruptRepaired()
      this.log.warn({ cid: cid.toString() }, 'scrub found a corrupt copy and rewrote it from a good one')
    } else {
      this.log.error(
        { cid: cid.toString() },
        'scrub found a corrupt copy and no good copy on any reachable peer; the copy is dropped',
      )
    }
  }

  /** A verified copy from the block's other holders, in placement order, stored here. */
  private async refetch(cid: CID, key: Uint8Array, policy: DurabilityPolicy): Promise<boolean> {
    const selfId = this.c.self()?.id
    const order = placeCopies(key, this.c.membership.placementMembers(), policy.copies)
    for (const peer of order) {
      if (peer.id === selfId || !isRoutable(peer)) continue
      try {
        const got = await this.c.peers.get(peer, cid)
        if (!blockMatches(cid, got.data)) continue
        await this.c.store.put(cid, got.data, got.policy ? strongerPolicy(policy, got.policy) : policy)
        return true
      } catch (err) {
        this.log.debug({ cid: cid.toString(), peer: peer.address, err: String(err) }, 'no good copy there')
      }
    }
    return false
  }
}
