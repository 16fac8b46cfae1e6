import { setTimeout as sleep } from 'node:timers/promises'

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number
  sleep(ms: number, signal?: AbortSignal): Promise<void>
}

export const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) => sleep(ms, undefined, { signal }),
}

/**
 * Byte-rate limiter for background traffic (repair pushes, scrub reads): a token bucket that
 * refills at `rate` bytes per second up to one second's worth. A request larger than the bucket
 * waits for a full bucket and then drives it negative, so any size passes and the long-run rate
 * still holds. Written here rather than taken from a package because waits must be abortable
 * (a stopping node cannot sit out a sleep) and the clock injectable (unit tests run instantly).
 */
export class TokenBucket {
  private tokens: number
  private last: number
  readonly capacity: number

  constructor(
    readonly rate: number,
    private readonly clock: Clock = realClock,
  ) {
    if (!(rate > 0)) throw new Error(`token bucket rate must be > 0 (got ${rate})`)
    this.capacity = rate
    this.tokens = rate
    this.last = clock.now()
  }

  /** Waits until `n` bytes may be sent, then takes them. */
  async take(n: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted()
      this.refill()
      const need = Math.min(n, this.capacity)
      if (this.tokens >= need) {
        this.tokens -= n
        return
      }
      await this.clock.sleep(Math.ceil(((need - this.tokens) / this.rate) * 1000), signal)
    }
  }

  private refill(): void {
    const now = this.clock.now()
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.rate)
    this.last = now
  }
}

/** Bytes per second over a sliding window of whole seconds (what status calls the repair rate). */
export class RateMeter {
  private readonly buckets: number[]
  private second = 0

  constructor(
    private readonly windowSeconds = 10,
    private readonly clock: Pick<Clock, 'now'> = realClock,
  ) {
    this.buckets = new Array(windowSeconds).fill(0)
    this.second = Math.floor(clock.now() / 1000)
  }

  add(bytes: number): void {
    this.advance()
    this.buckets[this.second % this.windowSeconds] =
      (this.buckets[this.second % this.windowSeconds] ?? 0) + bytes
  }

  /** Average over the window. */
  perSecond(): number {
    this.advance()
    return this.buckets.reduce((a, b) => a + b, 0) / this.windowSeconds
  }

  private advance(): void {
    const now = Math.floor(this.clock.now() / 1000)
    for (let s = Math.max(this.second + 1, now - this.windowSeconds + 1); s <= now; s++) {
      this.buckets[s % this.windowSeconds] = 0
    }
    if (now > this.second) this.second = now
  }
}
