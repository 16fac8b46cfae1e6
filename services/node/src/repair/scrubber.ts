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
import type { ShardStore, StoredShardEntry } from '../shard-store/shard-store.js'
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
  /** The node's erasure-coded shards, scrubbed after the blocks in the same pass. */
  shards?: ScrubbedShards
}

export interface ScrubbedShards {
  store: ShardStore
  /** Bytes of shards re-verified (metrics). */
  verified(bytes: number): void
  /** A shard failed and was dropped: rebuild it now; true when it was. */
  repair(entry: StoredShardEntry): Promise<boolean>
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
  /** Set once the blocks are done: the pass continues over the shards after this key. */
  shardCursor?: string
  shardsStarted?: boolean
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
 * writes it back with the stronger of the two records. Then the pass re-verifies the node's
 * erasure-coded shards (checksums) the same way; a shard that fails is dropped by the store and
 * rebuilt at once from K others (ScrubbedShards.repair).
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
    // A node that has just started does not yet know its peers: a corrupt copy found before it
    // joined could not be re-fetched (repair would restore it later, but the scrub pass should).
    while (!this.stopped && this.c.self()?.state === 'joining') await this.wakeup.wait(500)
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
    if (pass.shardsStarted) return this.scrubShardPage(pass)
    const after = pass.cursor === undefined ? undefined : Buffer.from(pass.cursor, 'hex')
    const page = await this.c.store.list({ after, limit: this.cfg.pageSize ?? DEFAULT_PAGE })
    if (page.length === 0) {
      if (this.c.shards === undefined) return false
      pass.shardsStarted = true
      return this.scrubShardPage(pass)
    }
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

  /** Verifies the next page of shards; false when the pass has reached the end. */
  private async scrubShardPage(pass: ScrubPass): Promise<boolean> {
    const shards = this.c.shards
    if (shards === undefined) return false
    const after = pass.shardCursor === undefined ? undefined : Buffer.from(pass.shardCursor, 'hex')
    const page = await shards.store.scan(after, this.cfg.pageSize ?? DEFAULT_PAGE)
    if (page.length === 0) return false
    for (const entry of page) {
      if (this.stopped) return true
      await this.bucket?.take(entry.size, this.abort.signal)
      const good = await shards.store.verify(entry)
      shards.verified(entry.size)
      pass.bytes += entry.size
      pass.shardCursor = entry.key.toString('hex')
      if (good) continue
      // The store counted the shard (found_by="scrub") and dropped it.
      this.counters.corruptFound++
      this.c.metrics?.corruptFound()
      if (await shards.repair(entry)) {
        this.counters.corruptRepaired++
        this.c.metrics?.corruptRepaired()
        this.log.warn({ key: entry.key.toString('hex') }, 'scrub found a corrupt shard and rebuilt it')
      } else {
        this.log.error(
          { key: entry.key.toString('hex') },
          'scrub found a corrupt shard and could not rebuild it now; repair passes retry',
        )
      }
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
    let refetched = await this.refetch(cid, record.key, policy)
    // Peers may be briefly unreachable (restarting, connecting): two more tries before the copy
    // is left to repair passes.
    for (let wait = 1_000; !refetched && wait <= 2_000 && !this.stopped; wait *= 2) {
      await this.wakeup.wait(wait)
      refetched = await this.refetch(cid, record.key, policy)
    }
    if (refetched) {
      this.counters.corruptRepaired++
      this.c.metrics?.corruptRepaired()
      this.log.warn({ cid: cid.toString() }, 'scrub found a corrupt copy and rewrote it from a good one')
    } else {
      this.log.error(
        { cid: cid.toString() },
        'scrub found a corrupt copy and no good copy on any reachable peer; the copy is dropped and left to repair',
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
