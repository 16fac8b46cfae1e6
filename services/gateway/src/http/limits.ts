import { isIPv6 } from 'node:net'

/** Buckets idle this long are full again and can be forgotten. */
const SWEEP_INTERVAL_MS = 10_000
/** Memory bound of the per-client state: past it the oldest entries are dropped (fail open). */
const MAX_TRACKED_CLIENTS = 200_000

/**
 * Per-client token buckets: `rate` requests per second sustained, `burst` at once. A bucket that
 * would be full is deleted, so memory follows the clients active in the last few seconds.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()
  private readonly timer: NodeJS.Timeout

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.timer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS)
    this.timer.unref()
  }

  /** Takes one token: 0 when the request may go, else the seconds until a token is available. */
  take(key: string): number {
    const now = this.now()
    let b = this.buckets.get(key)
    if (b === undefined) {
      if (this.buckets.size >= MAX_TRACKED_CLIENTS)
        this.buckets.delete(this.buckets.keys().next().value as string)
      b = { tokens: this.burst, at: now }
      this.buckets.set(key, b)
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate)
      b.at = now
    }
    if (b.tokens >= 1) {
      b.tokens -= 1
      return 0
    }
    return (1 - b.tokens) / this.rate
  }

  sweep(): void {
    const now = this.now()
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.rate >= this.burst) this.buckets.delete(key)
    }
  }

  close(): void {
    clearInterval(this.timer)
  }
}

/** Requests in progress, overall and per client. */
export class ConcurrencyLimits {
  private readonly perClient = new Map<string, number>()
  private total = 0

  constructor(
    readonly maxOverall: number,
    readonly maxPerClient: number,
  ) {}

  /** Admits one request of `key`, or says which limit it is over. */
  acquire(key: string): 'ok' | 'client' | 'overall' {
    if (this.total >= this.maxOverall) return 'overall'
    const n = this.perClient.get(key) ?? 0
    if (n >= this.maxPerClient) return 'client'
    this.perClient.set(key, n + 1)
    this.total++
    return 'ok'
  }

  release(key: string): void {
    const n = this.perClient.get(key) ?? 0
    if (n <= 1) this.perClient.delete(key)
    else this.perClient.set(key, n - 1)
    this.total = Math.max(0, this.total - 1)
  }

  get inFlight(): number {
    return this.total
  }
}

/**
 * The key a client's limits are counted under: an IPv4 address, or the /64 of an IPv6 address
 * (one subscriber usually holds a whole /64, so a /128 per request would evade the limit).
 */
export function addressKey(address: string | undefined): string {
  if (address === undefined) return 'ip:unknown'
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped) return `ip:${mapped[1]}`
  if (!isIPv6(address)) return `ip:${address}`
  const [head = '', tail = ''] = address.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === '' ? [] : tail.split(':')
  const groups = address.includes('::')
    ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
    : left
  return `ip6:${groups
    .slice(0, 4)
    .map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`
}

export interface BodyProgressOptions {
  /** Length of a measuring period of waiting time. */
  windowMs: number
  /** Bytes per second the body must average over each period; 0 needs only one byte. */
  minRate: number
}

/**
 * Watches a request body for progress while the gateway waits for it. Time during which the
 * gateway applies backpressure (the socket is paused because the import is busy) does not count,
 * so a fast client behind a slow cluster is never blamed. `onStall` runs once when a period of
 * waiting brought fewer bytes than required. Returns a function that stops watching.
 */
export function watchBodyProgress(
  socket: { isPaused(): boolean; bytesRead: number },
  options: BodyProgressOptions,
  onStall: (received: number, waitedMs: number) => void,
): () => void {
  const tick = Math.max(50, Math.min(1000, Math.floor(options.windowMs / 10)))
  const required = Math.max(1, (options.minRate * options.windowMs) / 1000)
  let waited = 0
  let received = 0
  let lastBytes = socket.bytesRead
  const timer = setInterval(() => {
    const bytes = socket.bytesRead
    const fresh = bytes - lastBytes
    lastBytes = bytes
    if (socket.isPaused()) return
    waited += tick
    received += fresh
    if (waited < options.windowMs) return
    if (received < required) {
      clearInterval(timer)
      onStall(received, waited)
      return
    }
    waited = 0
    received = 0
  }, tick)
  timer.unref()
  return () => clearInterval(timer)
}
