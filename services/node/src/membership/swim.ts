import {
  isPlaceable,
  type Logger,
  type Member,
  type MemberState,
  MembershipEvents,
  type MembershipView,
  supersedes,
} from '@mycel/core'

/**
 * The SWIM failure detector and membership dissemination as a state machine, apart from any
 * transport or real clock: the node runs it over gRPC (grpc-transport.ts), the unit tests over a
 * simulated network with virtual time (simulated-network.ts). ARCHITECTURE.md ("Membership")
 * describes the protocol, its timings and failure cases.
 */

/** Knobs (see SWIM_DEFAULTS and the MYCEL_* variables that set them). */
export interface SwimConfig {
  /** One probe of one member per interval (SWIM's protocol period). */
  probeIntervalMs: number
  /** How long a direct Ping may take before indirect probes start. */
  probeTimeoutMs: number
  /** Members asked to probe the target when the direct Ping failed (SWIM's k). */
  indirectProbes: number
  /** Suspect (or left) for this long: declared dead. */
  deadAfterMs: number
  /** Push-pull anti-entropy with one random member every interval. */
  syncIntervalMs: number
  /** Deadline of one Sync exchange. */
  syncTimeoutMs: number
  /** Retry of the join while no seed answered. */
  joinRetryMs: number
  /**
   * No seed answered for this long: start alone (alive) and keep trying the seeds in the
   * anti-entropy rounds, so that nodes that started apart merge. Without it, a cold start in
   * which every node waits for another would never end.
   */
  joinTimeoutMs: number
  /** How long a dead member's record (tombstone) is kept so that stale gossip cannot revive it. */
  tombstoneMs: number
  /** Each update is piggybacked retransmitMult × ⌈log10(n + 1)⌉ times (memberlist's λ·log n). */
  retransmitMult: number
  /** Updates carried by one message at most. */
  maxPiggyback: number
}

export const SWIM_DEFAULTS: SwimConfig = {
  probeIntervalMs: 1_000,
  probeTimeoutMs: 500,
  indirectProbes: 3,
  deadAfterMs: 300_000,
  syncIntervalMs: 10_000,
  syncTimeoutMs: 3_000,
  joinRetryMs: 1_000,
  joinTimeoutMs: 10_000,
  // A day: far longer than any gossip can stay in flight, short enough that the table stays small.
  tombstoneMs: 24 * 3600_000,
  // memberlist's default for LANs (DefaultLANConfig: RetransmitMult 4).
  retransmitMult: 4,
  maxPiggyback: 16,
}

export interface PingMessage {
  fromId: string
  targetId: string
  updates: Member[]
}
export interface AckMessage {
  fromId: string
  updates: Member[]
}
export interface PingReqMessage {
  fromId: string
  targetId: string
  targetAddress: string
  timeoutMs: number
  updates: Member[]
}
export interface PingReqResult {
  acked: boolean
  updates: Member[]
}
export interface SyncMessage {
  fromId: string
  members: Member[]
}

/** How messages reach other members. Each call rejects on any failure or after `timeoutMs`. */
export interface SwimTransport {
  ping(address: string, msg: PingMessage, timeoutMs: number): Promise<AckMessage>
  pingReq(address: string, msg: PingReqMessage, timeoutMs: number): Promise<PingReqResult>
  sync(address: string, msg: SyncMessage, timeoutMs: number): Promise<SyncMessage>
}

/** Time and timers (real ones in the node, virtual ones in simulations). */
export interface Clock {
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
}

/** Counters the protocol moves (the node maps them to Prometheus metrics). */
export interface SwimObserver {
  /** A direct probe was sent. */
  probeSent?(target: Member): void
  /** A direct probe got no valid answer in time (indirect probes follow). */
  probeFailed?(target: Member): void
  /** This node declared `member` suspect (direct and indirect probes failed). */
  suspicionRaised?(member: Member): void
  /** This node raised its incarnation to refute `claim` about itself. */
  refuted?(claim: Member): void
  /** This node declared `member` dead (suspect or left for deadAfterMs). */
  deadDeclared?(member: Member): void
}

export interface SwimInit {
  /** This node's record, without state and incarnation. */
  self: Omit<Member, 'state' | 'incarnation'>
  /** Incarnation to start with: higher than any this node used before (persisted per start). */
  incarnation: number
  transport: SwimTransport
  /** Seed addresses, resolved again on every call (static list, DNS). */
  seeds: () => Promise<string[]>
  config?: Partial<SwimConfig>
  clock?: Clock
  /** Uniform in [0, 1); injectable so that simulations are reproducible. */
  random?: () => number
  observer?: SwimObserver
  logger?: Logger
  /** Where change and update listeners live (shared with a wrapper that exists before this). */
  events?: MembershipEvents
}

interface Entry {
  member: Member
  /** Timer that declares a suspect or left member dead. */
  deadTimer?: unknown
  /** When the member was declared dead (tombstone age). */
  deadSince?: number
}

/** Members this node probes: live processes, as far as it knows. */
function probeable(m: Member): boolean {
  return m.state === 'alive' || m.state === 'suspect' || m.state === 'joining'
}

export class Swim implements MembershipView {
  readonly config: SwimConfig
  private readonly table = new Map<string, Entry>()
  private readonly broadcasts = new Map<string, { member: Member; transmits: number }>()
  readonly events: MembershipEvents
  private readonly clock: Clock
  private readonly random: () => number
  private readonly observer: SwimObserver
  private readonly log: Logger | undefined
  /** Seed addresses that turned out to be this node (a DNS seed lists every pod, this one too). */
  private readonly selfAddresses = new Set<string>()
  /** Which node answered at a seed address (a DNS seed is an IP, members advertise names). */
  private readonly addressOwners = new Map<string, string>()
  private readonly sleepers = new Set<() => void>()
  private probeOrder: string[] = []
  private probeIndex = 0
  private snapshot: readonly Member[] = []
  private dirty = true
  /** A change happened since listeners were last told. */
  private pendingNotify = false
  private running = false
  private reapTimer: unknown

  constructor(private readonly init: SwimInit) {
    this.config = { ...SWIM_DEFAULTS, ...init.config }
    this.clock = init.clock ?? realClock
    this.random = init.random ?? Math.random
    this.observer = init.observer ?? {}
    this.log = init.logger
    this.events = init.events ?? new MembershipEvents()
    this.table.set(init.self.id, {
      member: { ...init.self, state: 'joining', incarnation: init.incarnation },
    })
    this.selfAddresses.add(init.self.address)
  }

  get self(): Member {
    return { ...this.selfEntry.member }
  }

  /** False while this node is still joining (its view of the cluster is not yet complete). */
  get joined(): boolean {
    return this.selfEntry.member.state !== 'joining'
  }

  members(): readonly Member[] {
    if (this.dirty) {
      this.snapshot = Object.freeze(
        [...this.table.values()]
          .map((e) => Object.freeze({ ...e.member }))
          .sort((a, b) => (a.id < b.id ? -1 : 1)),
      )
      this.dirty = false
    }
    return this.snapshot
  }

  placementMembers(): readonly Member[] {
    return this.members().filter(isPlaceable)
  }

  onChange(listener: (members: readonly Member[]) => void): () => void {
    return this.events.onChange(listener)
  }

  /** Starts joining (through the seeds), probing, anti-entropy and tombstone expiry. */
  start(): void {
    if (this.running) return
    this.running = true
    void this.loop('join', () => this.joinLoop())
    void this.loop('probe', () => this.probeLoop())
    void this.loop('sync', () => this.syncLoop())
    this.scheduleReap()
  }

  /**
   * Graceful leave: announces `left` with a raised incarnation directly to every routable member
   * (best effort, each within the probe timeout), then stops.
   */
  async leave(): Promise<void> {
    if (!this.running) return
    this.running = false
    this.wakeSleepers()
    this.setSelfState('left')
    const me = this.self
    const targets = this.members().filter(
      (m) => m.id !== me.id && (m.state === 'alive' || m.state === 'suspect'),
    )
    await Promise.allSettled(
      targets.map((t) =>
        this.init.transport.ping(
          t.address,
          { fromId: me.id, targetId: t.id, updates: [me] },
          this.config.probeTimeoutMs,
        ),
      ),
    )
    this.log?.info({ told: targets.length, incarnation: me.incarnation }, 'left the cluster')
    this.stop()
  }

  /** Stops every loop and timer (no announcement; see leave()). */
  stop(): void {
    this.running = false
    this.wakeSleepers()
    this.clock.clearTimeout(this.reapTimer)
    for (const e of this.table.values()) this.clock.clearTimeout(e.deadTimer)
  }

  // ---- incoming messages ----

  handlePing(msg: PingMessage): AckMessage {
    this.mergeAll(msg.updates, false)
    return { fromId: this.init.self.id, updates: this.takeBroadcasts() }
  }

  async handlePingReq(msg: PingReqMessage): Promise<PingReqResult> {
    this.mergeAll(msg.updates, false)
    const acked = await this.pingDirect(
      { id: msg.targetId, address: msg.targetAddress },
      Math.min(msg.timeoutMs, this.config.probeTimeoutMs * 2),
    )
    return { acked, updates: this.takeBroadcasts() }
  }

  handleSync(msg: SyncMessage): SyncMessage {
    if (msg.fromId !== this.init.self.id) {
      this.mergeAll(msg.members, !this.joined)
      // Another node exchanged its whole view with this one: that completes a join too.
      if (!this.joined && this.running) this.setSelfState('alive')
    }
    return { fromId: this.init.self.id, members: [...this.members()] }
  }

  // ---- protocol loops ----

  private async loop(name: string, body: () => Promise<void>): Promise<void> {
    try {
      await body()
    } catch (err) {
      this.log?.error({ err, loop: name }, 'membership loop failed')
    }
  }

  private async joinLoop(): Promise<void> {
    let attempts = 0
    const started = this.clock.now()
    while (this.running && !this.joined) {
      if (this.clock.now() - started >= this.config.joinTimeoutMs) {
        this.log?.warn(
          { waitedMs: this.clock.now() - started },
          'no seed answered: alive on its own, still trying the seeds to merge with them',
        )
        this.setSelfState('alive')
        return
      }
      const seeds = (await this.resolveSeeds()).filter((a) => !this.selfAddresses.has(a))
      if (seeds.length === 0) {
        this.log?.info('no seeds besides this node: alive on its own')
        this.setSelfState('alive')
        return
      }
      for (const address of this.shuffle(seeds)) {
        if (!this.running || this.joined) break
        if (await this.syncWith(address)) {
          if (!this.joined) this.setSelfState('alive')
          this.log?.info({ seed: address, members: this.table.size }, 'joined the cluster')
          // Tell the seed at once that this node is alive, not joining.
          void this.syncWith(address)
          return
        }
      }
      // Every seed may have turned out to be this node.
      if (seeds.every((a) => this.selfAddresses.has(a))) continue
      attempts++
      // A cold start usually finds its seeds within a few attempts: only then is it worth a warning.
      if (attempts % 10 === 5) this.log?.warn({ seeds, attempts }, 'no seed answered: still joining')
      await this.sleep(this.config.joinRetryMs)
    }
  }

  private async probeLoop(): Promise<void> {
    while (this.running) {
      const started = this.clock.now()
      const target = this.joined ? this.nextProbeTarget() : undefined
      if (target !== undefined) await this.probe(target)
      await this.sleep(Math.max(0, this.config.probeIntervalMs - (this.clock.now() - started)))
    }
  }

  private async syncLoop(): Promise<void> {
    while (this.running) {
      await this.sleep(this.config.syncIntervalMs)
      if (!this.running || !this.joined) continue
      const me = this.init.self.id
      const peers = this.members().filter(
        (m) => m.id !== me && (m.state === 'alive' || m.state === 'suspect'),
      )
      const peer = this.pick(peers)
      if (peer !== undefined) await this.syncWith(peer.address)
      // Reconnect: a dead member may only have been cut off (a healed partition), and a seed that
      // no known member answers for may lead to another group of nodes (nodes that started
      // apart). One of them per round, at random.
      const routable = new Set(peers.map((m) => m.id))
      const candidates = new Set(
        this.members()
          .filter((m) => m.id !== me && m.state === 'dead')
          .map((m) => m.address),
      )
      for (const a of await this.resolveSeeds()) {
        const owner = this.addressOwners.get(a)
        if (owner !== undefined && routable.has(owner)) continue
        if (!this.selfAddresses.has(a) && !peers.some((m) => m.address === a)) candidates.add(a)
      }
      const reconnect = this.pick([...candidates])
      if (reconnect !== undefined && this.running) await this.syncWith(reconnect)
    }
  }

  /** One SWIM probe: direct Ping, then k indirect probes, then suspicion. */
  private async probe(target: Member): Promise<void> {
    this.observer.probeSent?.(target)
    if (await this.pingDirect(target, this.config.probeTimeoutMs)) return
    this.observer.probeFailed?.(target)
    const me = this.init.self.id
    const helpers = this.sample(
      this.members().filter((m) => m.id !== me && m.id !== target.id && m.state === 'alive'),
      this.config.indirectProbes,
    )
    if (helpers.length > 0) {
      // The helpers get the rest of the protocol period, at least one probe timeout.
      const timeout = Math.max(
        this.config.probeTimeoutMs,
        this.config.probeIntervalMs - this.config.probeTimeoutMs,
      )
      const acks = await Promise.all(
        helpers.map((h) =>
          this.init.transport
            .pingReq(
              h.address,
              {
                fromId: me,
                targetId: target.id,
                targetAddress: target.address,
                // Less than our own deadline, so that a helper's "no answer" still reaches us.
                timeoutMs: Math.floor(timeout * 0.8),
                updates: this.takeBroadcasts(),
              },
              timeout,
            )
            .then(
              (r) => {
                this.mergeAll(r.updates, false)
                return r.acked
              },
              () => false,
            ),
        ),
      )
      if (acks.includes(true)) return
    }
    if (!this.running) return
    const current = this.table.get(target.id)?.member
    // Only suspect the incarnation that was probed: it may have refuted meanwhile.
    if (current === undefined || current.incarnation !== target.incarnation) return
    if (current.state !== 'alive' && current.state !== 'joining') return
    const suspect: Member = { ...current, state: 'suspect' }
    this.observer.suspicionRaised?.(suspect)
    this.log?.warn(
      { peer: target.address, member: target.id },
      'member failed direct and indirect probes: suspect',
    )
    this.mergeAll([suspect], false)
  }

  /** Pings `target`; true when it answered in time with the expected id. */
  private async pingDirect(target: Pick<Member, 'id' | 'address'>, timeoutMs: number): Promise<boolean> {
    // A suspect always hears the suspicion from whoever probes it, so it can refute at once even
    // after the update's piggyback budget ran out.
    const held = this.table.get(target.id)?.member
    const updates = this.takeBroadcasts()
    if (held?.state === 'suspect' && !updates.some((u) => u.id === held.id)) updates.unshift({ ...held })
    try {
      const ack = await this.init.transport.ping(
        target.address,
        { fromId: this.init.self.id, targetId: target.id, updates },
        timeoutMs,
      )
      this.mergeAll(ack.updates, false)
      return ack.fromId === target.id
    } catch {
      return false
    }
  }

  /** Push-pull with `address`; false when it failed or the address is this node. */
  private async syncWith(address: string): Promise<boolean> {
    try {
      const res = await this.init.transport.sync(
        address,
        { fromId: this.init.self.id, members: [...this.members()] },
        this.config.syncTimeoutMs,
      )
      if (res.fromId === this.init.self.id) {
        this.selfAddresses.add(address)
        return false
      }
      this.addressOwners.set(address, res.fromId)
      this.mergeAll(res.members, !this.joined)
      return true
    } catch {
      return false
    }
  }

  private async resolveSeeds(): Promise<string[]> {
    try {
      return await this.init.seeds()
    } catch (err) {
      this.log?.warn({ err: String(err) }, 'seed resolution failed')
      return []
    }
  }

  // ---- state ----

  private get selfEntry(): Entry {
    return this.table.get(this.init.self.id) as Entry
  }

  /** A state change of this node itself: always with a raised incarnation, so it wins everywhere. */
  private setSelfState(state: MemberState): void {
    const e = this.selfEntry
    const previous = { ...e.member }
    e.member = { ...e.member, state, incarnation: e.member.incarnation + 1 }
    this.changed(e.member, previous)
    this.flush()
  }

  /**
   * Merges records received from another node. `learnTombstones`: take dead records of unknown
   * members too (only while joining, from a full view, so a new node knows who is dead; otherwise
   * a tombstone would travel forever between nodes that already expired it).
   */
  private mergeAll(records: readonly Member[], learnTombstones: boolean): void {
    for (const r of records) this.merge(r, learnTombstones)
    this.flush()
  }

  private merge(r: Member, learnTombstones: boolean): void {
    if (r.id === this.init.self.id) {
      this.mergeAboutSelf(r)
      return
    }
    const entry = this.table.get(r.id)
    if (entry === undefined) {
      if (r.state === 'dead' && !learnTombstones) return
      const e: Entry = { member: { ...r } }
      this.table.set(r.id, e)
      // SWIM: a new member joins the current probe round at a random position.
      const at = this.probeIndex + Math.floor(this.random() * (this.probeOrder.length - this.probeIndex + 1))
      this.probeOrder.splice(at, 0, r.id)
      this.enterState(e, undefined)
      this.changed(e.member, undefined)
      return
    }
    if (!supersedes(r, entry.member)) return
    const previous = entry.member
    entry.member = { ...r }
    this.enterState(entry, previous)
    this.changed(entry.member, previous)
  }

  /** Anything said about this node that is not its own current record is refuted. */
  private mergeAboutSelf(r: Member): void {
    const me = this.selfEntry.member
    if (r.incarnation < me.incarnation) return
    if (r.incarnation === me.incarnation && r.state === me.state) return
    const previous = { ...me }
    this.selfEntry.member = { ...me, incarnation: r.incarnation + 1 }
    if (r.state === 'suspect' || r.state === 'dead') {
      this.observer.refuted?.(r)
      this.log?.warn(
        { claim: r.state, incarnation: this.selfEntry.member.incarnation },
        'refuting a claim about this node',
      )
    }
    this.changed(this.selfEntry.member, previous)
  }

  /** Timers that follow a member's new state. */
  private enterState(e: Entry, previous: Member | undefined): void {
    const m = e.member
    if (previous?.state !== m.state || previous.incarnation !== m.incarnation) {
      this.clock.clearTimeout(e.deadTimer)
      e.deadTimer = undefined
    }
    if ((m.state === 'suspect' || m.state === 'left') && e.deadTimer === undefined && this.running) {
      const claim = { state: m.state, incarnation: m.incarnation }
      e.deadTimer = this.clock.setTimeout(() => {
        e.deadTimer = undefined
        if (!this.running || e.member.state !== claim.state || e.member.incarnation !== claim.incarnation)
          return
        const dead: Member = { ...e.member, state: 'dead' }
        this.observer.deadDeclared?.(dead)
        this.log?.warn(
          { member: dead.id, peer: dead.address, was: claim.state, afterMs: this.config.deadAfterMs },
          'member declared dead',
        )
        this.mergeAll([dead], false)
      }, this.config.deadAfterMs)
    }
    e.deadSince = m.state === 'dead' ? (e.deadSince ?? this.clock.now()) : undefined
  }

  private changed(member: Member, previous: Member | undefined): void {
    this.dirty = true
    this.broadcasts.set(member.id, { member: { ...member }, transmits: 0 })
    if (previous === undefined || previous.state !== member.state) {
      this.log?.info(
        {
          member: member.id,
          peer: member.address,
          state: member.state,
          was: previous?.state,
          incarnation: member.incarnation,
        },
        'membership change',
      )
    }
    this.events.emitUpdate({ ...member }, previous && { ...previous })
    this.pendingNotify = true
  }

  private flush(): void {
    if (!this.pendingNotify) return
    this.pendingNotify = false
    this.events.emitChange(this.members())
  }

  /** Updates to piggyback: the least transmitted first, each dropped after λ·log n sends. */
  private takeBroadcasts(): Member[] {
    if (this.broadcasts.size === 0) return []
    const live = [...this.table.values()].filter((e) => e.member.state !== 'dead').length
    const limit = this.config.retransmitMult * Math.max(1, Math.ceil(Math.log10(live + 1)))
    const chosen = [...this.broadcasts.values()]
      .sort((a, b) => a.transmits - b.transmits)
      .slice(0, this.config.maxPiggyback)
    for (const b of chosen) {
      b.transmits++
      if (b.transmits >= limit) this.broadcasts.delete(b.member.id)
    }
    return chosen.map((b) => b.member)
  }

  /** The next member of the shuffled round-robin probe order (SWIM's time-bounded completeness). */
  private nextProbeTarget(): Member | undefined {
    for (let round = 0; round < 2; round++) {
      while (this.probeIndex < this.probeOrder.length) {
        const id = this.probeOrder[this.probeIndex++] as string
        const e = this.table.get(id)
        if (e !== undefined && id !== this.init.self.id && probeable(e.member)) return e.member
      }
      this.probeOrder = this.shuffle(
        [...this.table.values()]
          .filter((e) => e.member.id !== this.init.self.id && probeable(e.member))
          .map((e) => e.member.id),
      )
      this.probeIndex = 0
    }
    return undefined
  }

  private scheduleReap(): void {
    const every = Math.min(this.config.tombstoneMs / 4, 60_000)
    this.reapTimer = this.clock.setTimeout(() => {
      if (!this.running) return
      const now = this.clock.now()
      for (const [id, e] of this.table) {
        if (e.deadSince !== undefined && now - e.deadSince >= this.config.tombstoneMs) {
          this.table.delete(id)
          this.broadcasts.delete(id)
          this.dirty = true
          this.pendingNotify = true
          this.log?.info({ member: id }, 'tombstone expired')
        }
      }
      this.flush()
      this.scheduleReap()
    }, every)
  }

  // ---- helpers ----

  private sleep(ms: number): Promise<void> {
    if (!this.running) return Promise.resolve()
    return new Promise((resolve) => {
      const wake = () => {
        this.sleepers.delete(wake)
        this.clock.clearTimeout(handle)
        resolve()
      }
      const handle = this.clock.setTimeout(wake, ms)
      this.sleepers.add(wake)
    })
  }

  private wakeSleepers(): void {
    for (const wake of [...this.sleepers]) wake()
  }

  private shuffle<T>(items: T[]): T[] {
    const a = [...items]
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1))
      ;[a[i], a[j]] = [a[j] as T, a[i] as T]
    }
    return a
  }

  private sample<T>(items: T[], k: number): T[] {
    return this.shuffle(items).slice(0, k)
  }

  private pick<T>(items: T[]): T | undefined {
    return items.length === 0 ? undefined : items[Math.floor(this.random() * items.length)]
  }
}
