import type { Member } from '@mycel/core'
import { type Clock, Swim, type SwimConfig, type SwimObserver, type SwimTransport } from './swim.js'

/**
 * A simulated network and virtual time for testing the SWIM state machine: many Swim instances
 * in one process, messages delivered after a fixed latency, crashed nodes and partitions that drop
 * messages, and timers that fire only when the test advances the clock. Deterministic for a given
 * random seed.
 */

/** Lets every pending promise continuation run (the microtask queue drains before setImmediate). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

export class VirtualClock implements Clock {
  private time = 0
  private seq = 0
  private readonly timers = new Map<number, { at: number; fn: () => void }>()

  now(): number {
    return this.time
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq
    this.timers.set(id, { at: this.time + Math.max(0, ms), fn })
    return id
  }

  clearTimeout(handle: unknown): void {
    if (typeof handle === 'number') this.timers.delete(handle)
  }

  /** Runs every timer due within `ms`, in time order, letting promises settle between them. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms
    for (;;) {
      await settle()
      let nextId: number | undefined
      let next: { at: number; fn: () => void } | undefined
      for (const [id, t] of this.timers) {
        if (t.at <= end && (next === undefined || t.at < next.at)) {
          next = t
          nextId = id
        }
      }
      if (next === undefined || nextId === undefined) break
      this.timers.delete(nextId)
      this.time = next.at
      next.fn()
    }
    this.time = end
    await settle()
  }

  /** Advances in steps until `done()` holds; returns the virtual time it took, or throws. */
  async until(done: () => boolean, limitMs: number, stepMs = 100): Promise<number> {
    const start = this.time
    while (!done()) {
      if (this.time - start >= limitMs)
        throw new Error(`condition not met within ${limitMs} ms of virtual time`)
      await this.advance(stepMs)
    }
    return this.time - start
  }
}

/** mulberry32: a small seeded PRNG, so that every run makes the same choices. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export interface SimNodeOptions {
  id: string
  seeds?: string[]
  incarnation?: number
  zone?: string
}

export class SimNetwork {
  readonly clock = new VirtualClock()
  readonly random: () => number
  /** One-way delivery time of every message. */
  latencyMs = 2
  private readonly nodes = new Map<string, Swim>()
  /** Addresses cut off from every other address (both directions). */
  private readonly isolated = new Set<string>()
  /** Pairs of addresses that cannot reach each other ("a|b", both orders). */
  private readonly cutPairs = new Set<string>()
  readonly counters = { refuted: 0, suspicions: 0, deadDeclared: 0, probes: 0, probeFailures: 0 }

  constructor(
    private readonly config: Partial<SwimConfig>,
    seed = 1,
  ) {
    this.random = seededRandom(seed)
  }

  static address(id: string): string {
    return `${id}.sim:7070`
  }

  /** Creates and starts a node at `<id>.sim:7070`. */
  add(opts: SimNodeOptions): Swim {
    const address = SimNetwork.address(opts.id)
    const observer: SwimObserver = {
      probeSent: () => this.counters.probes++,
      probeFailed: () => this.counters.probeFailures++,
      suspicionRaised: () => this.counters.suspicions++,
      refuted: () => this.counters.refuted++,
      deadDeclared: () => this.counters.deadDeclared++,
    }
    const swim = new Swim({
      self: { id: opts.id, address, zone: opts.zone ?? 'default', host: opts.id, weight: 1 },
      incarnation: opts.incarnation ?? 1,
      transport: this.transportFrom(address),
      seeds: async () => opts.seeds ?? [],
      config: this.config,
      clock: this.clock,
      random: this.random,
      observer,
    })
    this.nodes.set(address, swim)
    swim.start()
    return swim
  }

  /** A crash: the node stops and never answers again. */
  crash(id: string): void {
    const address = SimNetwork.address(id)
    this.nodes.get(address)?.stop()
    this.nodes.delete(address)
  }

  /** Cuts `id` off from everyone (or heals it). */
  partition(id: string, cut: boolean): void {
    const address = SimNetwork.address(id)
    if (cut) this.isolated.add(address)
    else this.isolated.delete(address)
  }

  /** Cuts (or heals) only the link between `a` and `b`: each still reaches everyone else. */
  cutLink(a: string, b: string, cut: boolean): void {
    const [x, y] = [SimNetwork.address(a), SimNetwork.address(b)]
    for (const key of [`${x}|${y}`, `${y}|${x}`]) {
      if (cut) this.cutPairs.add(key)
      else this.cutPairs.delete(key)
    }
  }

  node(id: string): Swim {
    const swim = this.nodes.get(SimNetwork.address(id))
    if (swim === undefined) throw new Error(`no node ${id}`)
    return swim
  }

  get live(): Swim[] {
    return [...this.nodes.values()]
  }

  /** `id`'s record as `observer` holds it. */
  view(observer: string, id: string): Member | undefined {
    return this.node(observer)
      .members()
      .find((m) => m.id === id)
  }

  private reachable(from: string, to: string): boolean {
    if (from === to) return true
    return !this.isolated.has(from) && !this.isolated.has(to) && !this.cutPairs.has(`${from}|${to}`)
  }

  private transportFrom(from: string): SwimTransport {
    const call = <T>(to: string, timeoutMs: number, handle: (swim: Swim) => T | Promise<T>): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        const timer = this.clock.setTimeout(() => reject(new Error('deadline exceeded')), timeoutMs)
        if (!this.reachable(from, to)) return
        this.clock.setTimeout(async () => {
          const swim = this.nodes.get(to)
          if (swim === undefined || !this.reachable(from, to)) return
          const res = structuredClone(await handle(swim))
          this.clock.setTimeout(() => {
            if (!this.reachable(to, from) || !this.nodes.has(from)) return
            this.clock.clearTimeout(timer)
            resolve(res)
          }, this.latencyMs)
        }, this.latencyMs)
      })
    return {
      ping: (to, msg, t) => call(to, t, (s) => s.handlePing(structuredClone(msg))),
      pingReq: (to, msg, t) => call(to, t, (s) => s.handlePingReq(structuredClone(msg))),
      sync: (to, msg, t) => call(to, t, (s) => s.handleSync(structuredClone(msg))),
    }
  }
}
