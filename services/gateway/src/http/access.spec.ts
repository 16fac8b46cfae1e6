import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createToken, hashToken, parseTokenFile, TokenAuthenticator, tokenFileLine } from '@mycel/core'
import { decideAccess, requiredScope } from './access.js'
import { addressKey, ConcurrencyLimits, TokenBuckets, watchBodyProgress } from './limits.js'

describe('route scopes', () => {
  it('classifies every route, whatever its spelling', () => {
    const cases: Array<[string, string, string]> = [
      ['GET', '/healthz', 'open'],
      ['GET', '/metrics', 'open'],
      ['GET', '/mycel/v1/openapi.yaml', 'open'],
      ['GET', '/ipfs/bafy/a/b', 'read'],
      ['HEAD', '/ipfs/bafy', 'read'],
      ['OPTIONS', '/ipfs/bafy', 'open'],
      ['POST', '/api/v0/cat', 'read'],
      ['POST', '/api/v0/block/get', 'read'],
      ['POST', '/api/v0/dag/export', 'read'],
      ['POST', '/api/v0/add', 'write'],
      ['POST', '/API/V0/ADD/', 'write'],
      ['POST', '/api/v0/block/put', 'write'],
      ['POST', '/api/v0/dag/import', 'write'],
      ['POST', '/api/v0/pin/add', 'write'],
      ['POST', '/api/v0/pin/rm', 'write'],
      ['POST', '/api/v0/pin/ls', 'read'],
      ['PUT', '/mycel/v1/upload', 'write'],
      ['GET', '/mycel/v1/status', 'admin'],
      ['GET', '/Mycel/V1/Status//', 'admin'],
      ['POST', '/api/v0/repo/gc', 'admin'],
      ['GET', '/something/new', 'admin'],
    ]
    for (const [method, path, scope] of cases)
      assert.equal(requiredScope(method, path), scope, `${method} ${path}`)
  })
})

describe('access decisions', () => {
  const read = createToken()
  const robot = createToken()
  const tokens = TokenAuthenticator.fromTokens(
    parseTokenFile(
      [tokenFileLine('reader', ['read'], read), tokenFileLine('robot', ['write'], robot)].join('\n'),
    ),
  )
  const decide = (header: string | undefined, need: 'read' | 'write' | 'admin', publicReads = true) =>
    decideAccess(header, need, publicReads, tokens, 'ip:10.0.0.1')

  it('public reads need no token; a token that cannot read may still read what is public', () => {
    assert.deepEqual(decide(undefined, 'read'), { key: 'ip:10.0.0.1' })
    assert.deepEqual(decide(`Bearer ${robot}`, 'read'), { key: `token:${hashToken(robot)}` })
    assert.deepEqual(decide(`Bearer ${read}`, 'read'), { key: 'token:reader' })
  })

  it('refuses missing, unknown and malformed credentials (counted by address) and missing scopes', () => {
    assert.equal(decide(undefined, 'write').refusal?.code, 'UNAUTHENTICATED')
    const unknown = decide(`Bearer ${createToken()}`, 'read')
    assert.equal(unknown.refusal?.code, 'UNAUTHENTICATED', 'even for a public read')
    assert.equal(unknown.key, 'ip:10.0.0.1')
    assert.equal(decide('Basic dXNlcjpwYXNz', 'read').refusal?.code, 'UNAUTHENTICATED')
    assert.equal(decide(`Bearer ${read}`, 'write').refusal?.code, 'PERMISSION_DENIED')
    assert.equal(decide(`Bearer ${robot}`, 'read', false).refusal?.code, 'PERMISSION_DENIED')
    assert.equal(decide(`Bearer ${robot}`, 'write').refusal, undefined)
    assert.equal(decide(`Bearer ${robot}`, 'admin').refusal?.code, 'PERMISSION_DENIED')
  })
})

describe('client limits', () => {
  it('keys IPv4 by address and IPv6 by /64', () => {
    assert.equal(addressKey('10.1.2.3'), 'ip:10.1.2.3')
    assert.equal(addressKey('::ffff:10.1.2.3'), 'ip:10.1.2.3')
    assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), 'ip6:2001:db8:1:2::/64')
    assert.equal(addressKey('2001:db8:1:2::9'), 'ip6:2001:db8:1:2::/64')
    assert.equal(addressKey('2001:0db8::1'), 'ip6:2001:db8:0:0::/64')
    assert.equal(addressKey('::1'), 'ip6:0:0:0:0::/64')
  })

  it('token buckets allow the burst, then the rate, and say when to retry', () => {
    let now = 0
    const buckets = new TokenBuckets(2, 3, () => now)
    try {
      assert.deepEqual(
        [1, 2, 3].map(() => buckets.take('a')),
        [0, 0, 0],
      )
      assert.equal(buckets.take('a'), 0.5)
      assert.equal(buckets.take('b'), 0, 'another client has its own bucket')
      now += 500
      assert.equal(buckets.take('a'), 0)
      assert.ok(buckets.take('a') > 0)
      now += 10_000
      buckets.sweep()
      assert.deepEqual(
        [1, 2, 3].map(() => buckets.take('a')),
        [0, 0, 0],
        'refilled up to the burst',
      )
    } finally {
      buckets.close()
    }
  })

  it('counts requests in progress per client and overall', () => {
    const limits = new ConcurrencyLimits(3, 2)
    assert.deepEqual(
      ['a', 'a', 'a'].map((k) => limits.acquire(k)),
      ['ok', 'ok', 'client'],
    )
    assert.equal(limits.acquire('b'), 'ok')
    assert.equal(limits.acquire('c'), 'overall')
    limits.release('a')
    assert.equal(limits.acquire('c'), 'ok')
    assert.equal(limits.inFlight, 3)
  })

  it('body progress: stalls only while waiting for the client, not while paused', async () => {
    const socket = {
      paused: false,
      bytesRead: 0,
      isPaused() {
        return this.paused
      },
    }
    const stalls: number[] = []
    const stop = watchBodyProgress(socket, { windowMs: 500, minRate: 1000 }, (received) =>
      stalls.push(received),
    )
    try {
      // Paused (backpressure) for longer than the window: never a stall.
      socket.paused = true
      await new Promise((r) => setTimeout(r, 700))
      assert.deepEqual(stalls, [])
      // Waiting, and the client sends 100 bytes where 500 are required.
      socket.paused = false
      socket.bytesRead += 100
      const deadline = Date.now() + 10_000
      while (stalls.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      assert.equal(stalls.length, 1)
      assert.ok((stalls[0] ?? 0) <= 100)
    } finally {
      stop()
    }
  })
})
