import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type Clock, RateMeter, TokenBucket } from './token-bucket.js'

/** A clock that only moves when something sleeps: tests of rates run instantly. */
function fakeClock(): Clock & { t: number; slept: number } {
  const clock = {
    t: 0,
    slept: 0,
    now: () => clock.t,
    sleep: async (ms: number, signal?: AbortSignal) => {
      signal?.throwIfAborted()
      clock.t += ms
      clock.slept += ms
    },
  }
  return clock
}

describe('token bucket', () => {
  it('lets a full second of bytes through at once, then holds to the rate', async () => {
    const clock = fakeClock()
    const bucket = new TokenBucket(1_000_000, clock)
    await bucket.take(1_000_000)
    assert.equal(clock.slept, 0)
    for (let i = 0; i < 10; i++) await bucket.take(250_000)
    // 2.5 MB more at 1 MB/s.
    assert.ok(Math.abs(clock.t - 2500) <= 10, `took ${clock.t} ms`)
  })

  it('passes a request larger than the bucket, and charges it', async () => {
    const clock = fakeClock()
    const bucket = new TokenBucket(100_000, clock)
    await bucket.take(300_000)
    assert.equal(clock.t, 0, 'a full bucket lets it start')
    await bucket.take(1)
    assert.ok(clock.t >= 2000, `the debt is paid before the next byte (${clock.t} ms)`)
  })

  it('refills with time, up to one second of tokens', async () => {
    const clock = fakeClock()
    const bucket = new TokenBucket(1000, clock)
    await bucket.take(1000)
    clock.t += 10_000
    await bucket.take(1000)
    assert.equal(clock.slept, 0)
    await bucket.take(500)
    assert.ok(clock.slept >= 500)
  })

  it('stops waiting when aborted', async () => {
    const bucket = new TokenBucket(1)
    await bucket.take(1)
    const ac = new AbortController()
    const waiting = bucket.take(1_000, ac.signal)
    ac.abort()
    await assert.rejects(waiting, { name: 'AbortError' })
  })
})

describe('rate meter', () => {
  it('averages bytes over its window and forgets old seconds', () => {
    const clock = { now: () => t }
    let t = 0
    const meter = new RateMeter(10, clock)
    meter.add(10_000)
    t = 5_000
    meter.add(10_000)
    assert.equal(meter.perSecond(), 2_000)
    t = 12_000
    assert.equal(meter.perSecond(), 1_000, 'the first second fell out of the window')
    t = 60_000
    assert.equal(meter.perSecond(), 0)
  })
})
