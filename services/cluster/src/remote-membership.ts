import {
  type ChannelCredentials,
  type ChannelOptions,
  type ClientReadableStream,
  credentials,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js'
import {
  isPlaceable,
  isRoutable,
  type Logger,
  type Member,
  MembershipEvents,
  type MembershipView,
  supersedes,
} from '@mycel/core'
import { MembershipServiceClient, type WatchMembershipResponse } from '@mycel/proto'
import { membersFromRecords } from './membership-codec.js'

export interface RemoteMembershipOptions {
  /** Seed addresses, resolved again on every call (see seedResolver). */
  seeds: () => Promise<string[]>
  logger: Logger
  credentials?: ChannelCredentials
  /** Extra channel options (the TLS server name override of clusterClientOptions). */
  channelOptions?: ChannelOptions
  /** A followed node silent for this long (no view, no heartbeat) is given up. */
  staleAfterMs?: number
  /** Wait between rounds in which no node could be followed (doubles up to maxRetryMs). */
  retryMs?: number
  maxRetryMs?: number
}

const DEFAULTS = { staleAfterMs: 6_000, retryMs: 250, maxRetryMs: 4_000 }

/**
 * The cluster's membership as a process outside it (the gateway) learns it: it follows one
 * storage node's WatchMembership stream (its whole view, after every change and on heartbeats)
 * and fails over to another member, or a seed, when that stream ends, errors or goes silent.
 * Views are merged with SWIM's precedence, so a node that is a little behind cannot undo a newer
 * record the gateway already has; members the followed node no longer lists (expired tombstones)
 * are dropped.
 */
export class RemoteMembership implements MembershipView {
  readonly self = undefined
  private readonly byId = new Map<string, Member>()
  private snapshot: readonly Member[] = []
  private readonly events = new MembershipEvents()
  private readonly clients = new Map<string, MembershipServiceClient>()
  private readonly cfg: typeof DEFAULTS
  private readonly creds: ChannelCredentials
  private readonly log: Logger
  private closed = false
  private call: ClientReadableStream<WatchMembershipResponse> | undefined
  private knownWaiters: Array<() => void> = []
  private wakeRetry: (() => void) | undefined
  /** Address and node id of the node followed now. */
  source: { address: string; nodeId: string } | undefined
  /** True once a view was received (readiness). */
  known = false

  constructor(private readonly opts: RemoteMembershipOptions) {
    this.cfg = { ...DEFAULTS, ...opts }
    this.creds = opts.credentials ?? credentials.createInsecure()
    this.log = opts.logger.child({ component: 'cluster:membership' })
  }

  members(): readonly Member[] {
    return this.snapshot
  }

  placementMembers(): readonly Member[] {
    return this.snapshot.filter(isPlaceable)
  }

  onChange(listener: (members: readonly Member[]) => void): () => void {
    return this.events.onChange(listener)
  }

  start(): void {
    void this.followLoop().catch((err: unknown) => this.log.error({ err }, 'membership follower failed'))
  }

  /** Resolves true once a view is known, false after `timeoutMs`. */
  waitUntilKnown(timeoutMs: number): Promise<boolean> {
    if (this.known) return Promise.resolve(true)
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs)
      this.knownWaiters.push(() => {
        clearTimeout(timer)
        resolve(true)
      })
    })
  }

  close(): void {
    this.closed = true
    this.call?.cancel()
    this.wakeRetry?.()
    for (const c of this.clients.values()) c.close()
    this.clients.clear()
  }

  private async followLoop(): Promise<void> {
    let backoff = this.cfg.retryMs
    let previous: string | undefined
    while (!this.closed) {
      let followed = false
      for (const address of await this.candidates(previous)) {
        if (this.closed) return
        if (await this.follow(address)) {
          followed = true
          previous = address
          break
        }
      }
      if (followed) {
        backoff = this.cfg.retryMs
        continue
      }
      previous = undefined
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, backoff)
        this.wakeRetry = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      backoff = Math.min(backoff * 2, this.cfg.maxRetryMs)
    }
  }

  /** Routable members first (alive before suspect), then the seeds; the last source goes last. */
  private async candidates(previous: string | undefined): Promise<string[]> {
    const shuffle = <T>(a: T[]) => a.sort(() => Math.random() - 0.5)
    const alive = shuffle(this.snapshot.filter((m) => m.state === 'alive').map((m) => m.address))
    const suspect = shuffle(
      this.snapshot.filter((m) => isRoutable(m) && m.state !== 'alive').map((m) => m.address),
    )
    let seeds: string[] = []
    try {
      seeds = shuffle(await this.opts.seeds())
    } catch (err) {
      this.log.warn({ err: String(err) }, 'seed resolution failed')
    }
    const order = [...new Set([...alive, ...suspect, ...seeds])]
    return previous === undefined
      ? order
      : [...order.filter((a) => a !== previous), ...order.filter((a) => a === previous)]
  }

  /** Follows one node until its stream ends; true when it delivered at least one view. */
  private follow(address: string): Promise<boolean> {
    return new Promise((resolve) => {
      let delivered = false
      let client = this.clients.get(address)
      if (client === undefined) {
        client = new MembershipServiceClient(address, this.creds, {
          'grpc.initial_reconnect_backoff_ms': 200,
          'grpc.max_reconnect_backoff_ms': 1_000,
          'grpc.keepalive_time_ms': 10_000,
          'grpc.keepalive_timeout_ms': 5_000,
          ...this.opts.channelOptions,
        })
        this.clients.set(address, client)
      }
      const call = client.watchMembership({}, new Metadata())
      this.call = call
      let staleTimer: NodeJS.Timeout | undefined
      const armStale = (ms: number) => {
        clearTimeout(staleTimer)
        staleTimer = setTimeout(() => {
          this.log.warn({ peer: address, silentMs: ms }, 'followed node went silent: following another')
          call.cancel()
        }, ms)
      }
      // The first view must come quickly; afterwards the node's heartbeat sets the pace.
      armStale(this.cfg.staleAfterMs)
      let done = false
      const finish = (why: string, err?: ServiceError) => {
        if (done) return
        done = true
        clearTimeout(staleTimer)
        if (this.source?.address === address) this.source = undefined
        if (delivered) this.log.info({ peer: address, why, err: err?.details }, 'membership stream ended')
        else this.log.debug({ peer: address, err: err?.details }, 'could not follow node')
        resolve(delivered)
      }
      call.on('data', (res: WatchMembershipResponse) => {
        if (!delivered) this.log.info({ peer: address, nodeId: res.nodeId }, 'following membership of node')
        delivered = true
        this.source = { address, nodeId: res.nodeId }
        armStale(Math.max(this.cfg.staleAfterMs, 3 * res.heartbeatMs))
        this.apply(membersFromRecords(res.members))
      })
      call.on('error', (err: ServiceError) => finish('error', err))
      call.on('end', () => finish('end'))
    })
  }

  private apply(records: readonly Member[]): void {
    const next = mergeView(this.byId, records)
    const first = !this.known
    if (first) {
      this.known = true
      for (const w of this.knownWaiters.splice(0)) w()
    }
    if (next === undefined && !first) return
    if (next !== undefined) {
      this.byId.clear()
      for (const [id, m] of next) this.byId.set(id, m)
    }
    const addresses = new Set([...this.byId.values()].map((m) => m.address))
    for (const [address, client] of this.clients) {
      if (!addresses.has(address) && address !== this.source?.address) {
        client.close()
        this.clients.delete(address)
      }
    }
    this.snapshot = Object.freeze([...this.byId.values()].sort((a, b) => (a.id < b.id ? -1 : 1)))
    this.events.emitChange(this.snapshot)
  }
}

/**
 * A followed node's view merged into the one known: per member the record that wins by SWIM's
 * precedence (a node a little behind cannot undo newer news); members the view no longer lists
 * (expired tombstones) are dropped. Undefined when nothing changed.
 */
export function mergeView(
  known: ReadonlyMap<string, Member>,
  records: readonly Member[],
): Map<string, Member> | undefined {
  let changed = records.length !== known.size
  const next = new Map<string, Member>()
  for (const r of records) {
    const cur = known.get(r.id)
    if (cur !== undefined && !supersedes(r, cur)) {
      next.set(r.id, cur)
      continue
    }
    next.set(r.id, r)
    changed ||= cur === undefined || cur.state !== r.state || cur.incarnation !== r.incarnation
  }
  for (const id of known.keys()) changed ||= !next.has(id)
  return changed ? next : undefined
}
