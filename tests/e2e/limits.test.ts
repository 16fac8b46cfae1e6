import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { ClientRequest } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Metadata, status } from '@grpc/grpc-js'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { sha256 } from '../helpers/data.js'
import { blockClient } from '../helpers/grpc.js'
import { eventually } from '../helpers/poll.js'
import { httpFrom, rawConnection, startRequest } from '../helpers/raw-http.js'

/**
 * Every gateway limit, breached on purpose by one client (its own loopback address, 127.0.0.x)
 * while the others, and stored data, are unaffected.
 */
describe('gateway limits: slow and oversized clients get clear errors, others are unaffected', () => {
  let cluster: TestCluster
  let url: string
  let keep: { cid: string; hash: string }
  let nextAddress = 10
  /** A fresh client address for each test, so per-client limits never carry over. */
  const client = () => `127.0.0.${nextAddress++}`

  before(async () => {
    cluster = await startCluster({
      nodes: 2,
      gatewayEnv: {
        MYCEL_MAX_HEADER_BYTES: '4096',
        MYCEL_HEADERS_TIMEOUT_MS: '1000',
        MYCEL_BODY_TIMEOUT_MS: '3000',
        MYCEL_BODY_MIN_RATE: '1024',
        MYCEL_MAX_UPLOAD_BYTES: String(2_000_000),
        MYCEL_MAX_CONCURRENT_PER_CLIENT: '2',
        MYCEL_MAX_CONCURRENT_REQUESTS: '4',
        MYCEL_RATE_LIMIT_RPS: '2',
        MYCEL_RATE_LIMIT_BURST: '10',
      },
    })
    url = cluster.gatewayUrl
    const bytes = randomBytes(400_000)
    const up = await httpFrom(`${url}/mycel/v1/upload`, {
      method: 'POST',
      body: bytes,
      localAddress: client(),
    })
    assert.equal(up.status, 201, up.body)
    keep = { cid: JSON.parse(up.body).cid, hash: sha256(bytes) }
  })
  after(async () => {
    if (cluster !== undefined) {
      // Whatever the tests did, stored content reads back intact and the gateway still serves.
      const res = await fetch(`${url}/ipfs/${keep.cid}`)
      assert.equal(res.status, 200)
      assert.equal(sha256(Buffer.from(await res.arrayBuffer())), keep.hash)
      assert.ok(cluster.gateway.running)
    }
    await cluster?.destroy()
  })

  /** Others keep being served while one client misbehaves. */
  async function othersServed(): Promise<void> {
    const res = await httpFrom(`${url}/ipfs/${keep.cid}`, { localAddress: client() })
    assert.equal(res.status, 200)
  }

  it('headers over MYCEL_MAX_HEADER_BYTES → 431 (Kubo JSON under /api/v0)', async () => {
    const big = 'x'.repeat(8000)
    const plain = await httpFrom(`${url}/ipfs/${keep.cid}`, {
      headers: { 'X-Big': big },
      localAddress: client(),
    })
    assert.equal(plain.status, 431)
    assert.match(plain.body, /exceed 4096 bytes/)
    const { socket, received } = rawConnection(url)
    socket.write(`POST /api/v0/cat?arg=${keep.cid} HTTP/1.1\r\nHost: x\r\nX-Big: ${big}\r\n\r\n`)
    const { text } = await received
    assert.match(text, /^HTTP\/1\.1 431 /)
    assert.equal(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)).Type, 'error')
    await othersServed()
  })

  it('headers sent slowly (slow loris) → 408 after MYCEL_HEADERS_TIMEOUT_MS, connection closed', async () => {
    const { socket, received } = rawConnection(url)
    const started = Date.now()
    socket.write('GET /ipfs/')
    const drip = setInterval(() => socket.write('a'), 100)
    const { text, closedByServer } = await received
    clearInterval(drip)
    assert.ok(closedByServer, 'the gateway closed the connection')
    assert.match(text, /^HTTP\/1\.1 408 /)
    assert.match(text, /request headers not received within 1000 ms/)
    assert.ok(Date.now() - started < 15_000)
    await othersServed()
  })

  it('a body sent at a few bytes per second → 408 and the connection is closed', async () => {
    for (const path of ['/mycel/v1/upload', '/api/v0/add']) {
      const multipart = path === '/api/v0/add'
      const { req, response } = startRequest(`${url}${path}`, {
        method: 'POST',
        headers: {
          'Content-Length': '100000',
          ...(multipart ? { 'Content-Type': 'multipart/form-data; boundary=b' } : {}),
        },
        localAddress: client(),
      })
      req.on('error', () => undefined)
      req.write(multipart ? '--b\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n' : 'x')
      const drip = setInterval(() => req.write('x'), 250)
      const started = Date.now()
      try {
        const res = await response
        assert.equal(res.status, 408, res.body)
        assert.match(multipart ? JSON.parse(res.body).Message : res.body, /request body too slow/)
        assert.equal(res.headers.connection, 'close')
        assert.ok(Date.now() - started < 15_000)
        await eventually(async () => req.socket?.destroyed ?? true, 'the connection to close')
      } finally {
        clearInterval(drip)
        req.destroy()
      }
    }
    await othersServed()
  })

  it('a fast client is never timed out while the gateway itself applies backpressure', async () => {
    // 1.9 MB through the import (several chunks written to the nodes) with a 3 s progress window.
    const bytes = randomBytes(1_900_000)
    const res = await httpFrom(`${url}/mycel/v1/upload`, {
      method: 'POST',
      body: bytes,
      localAddress: client(),
    })
    assert.equal(res.status, 201, res.body)
  })

  it('an upload over MYCEL_MAX_UPLOAD_BYTES → 413, declared or streamed', async () => {
    const ip = client()
    const declared = await httpFrom(`${url}/mycel/v1/upload`, {
      method: 'POST',
      body: randomBytes(2_000_001),
      localAddress: ip,
    })
    assert.equal(declared.status, 413)
    const { req, response } = startRequest(`${url}/api/v0/add`, {
      method: 'POST',
      headers: { 'Content-Type': 'multipart/form-data; boundary=b', 'Transfer-Encoding': 'chunked' },
      localAddress: ip,
    })
    req.on('error', () => undefined)
    req.write('--b\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n')
    for (let i = 0; i < 40 && !req.destroyed; i++) req.write(randomBytes(64 * 1024))
    req.end('\r\n--b--\r\n')
    const streamed = await response
    assert.equal(streamed.status, 413)
    assert.match(JSON.parse(streamed.body).Message, /exceeds the limit of 2000000 bytes/)
  })

  it('more requests per second than MYCEL_RATE_LIMIT_RPS → 429 with Retry-After; other clients unaffected', async () => {
    const ip = client()
    // 30 requests at once: the bucket holds 10 and refills 2 per second, so however slow this
    // machine is, most of them find it empty (Kubo RPC calls among them, for the JSON shape).
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        i % 3 === 0
          ? httpFrom(`${url}/api/v0/version`, { method: 'POST', localAddress: ip })
          : httpFrom(`${url}/ipfs/${keep.cid}`, { localAddress: ip }),
      ),
    )
    const limited = answers.filter(
      (r) => r.status === 429 && /rate limit of 2 requests per second/.test(r.body),
    )
    assert.ok(limited.length >= 15, `${limited.length} of 30 rate-limited`)
    assert.ok(answers.filter((r) => r.status === 200).length <= 12)
    for (const r of limited) {
      assert.ok(Number(r.headers['retry-after']) >= 1)
      if (r.headers['content-type']?.startsWith('application/json'))
        assert.equal(JSON.parse(r.body).Type, 'error')
    }
    assert.ok(
      limited.some((r) => r.headers['content-type']?.startsWith('application/json')),
      'Kubo RPC calls get the JSON shape',
    )
    // Probes are never limited; another client is served.
    assert.equal((await httpFrom(`${url}/healthz`, { localAddress: ip })).status, 200)
    await othersServed()
    // The bucket refills.
    await sleep(1500)
    assert.equal((await httpFrom(`${url}/ipfs/${keep.cid}`, { localAddress: ip })).status, 200)
  })

  it('concurrent requests over the per-client (429) and overall (503) limits, then admitted again', async () => {
    const held: ClientRequest[] = []
    /** An upload kept in progress: its body arrives fast enough, but never ends. */
    const hold = (localAddress: string) => {
      const { req, response } = startRequest(`${url}/mycel/v1/upload`, {
        method: 'POST',
        headers: { 'Content-Length': String(1_000_000) },
        localAddress,
      })
      // Destroyed by the test at the end: its failure is expected.
      response.catch(() => undefined)
      const feed = setInterval(() => req.write(Buffer.alloc(4096)), 200)
      req.once('close', () => clearInterval(feed))
      req.write(Buffer.alloc(4096))
      held.push(req)
    }
    const [a, b, c] = [client(), client(), client()]
    try {
      hold(a)
      hold(a)
      await eventually(
        async () => (await httpFrom(`${url}/ipfs/${keep.cid}`, { localAddress: a })).status === 429,
        'client a to be at its limit',
      )
      const perClient = await httpFrom(`${url}/ipfs/${keep.cid}`, { localAddress: a })
      assert.equal(perClient.status, 429)
      assert.equal(perClient.headers['retry-after'], '1')
      assert.match(perClient.body, /too many requests in progress for this client \(at most 2\)/)
      hold(b)
      hold(b)
      await eventually(
        async () => (await httpFrom(`${url}/ipfs/${keep.cid}`, { localAddress: c })).status === 503,
        'the gateway to be at its overall limit',
      )
      const overall = await httpFrom(`${url}/ipfs/${keep.cid}`, { localAddress: c })
      assert.equal(overall.status, 503)
      assert.equal(overall.headers['retry-after'], '1')
      assert.match(overall.body, /limit of 4 requests in progress/)
      assert.equal((await httpFrom(`${url}/readyz`, { localAddress: c })).status, 200, 'probes still answer')
    } finally {
      for (const r of held) r.destroy()
    }
    await eventually(
      async () => (await httpFrom(`${url}/ipfs/${keep.cid}`, { localAddress: c })).status === 200,
      'requests to be admitted again',
    )
    await eventually(
      async () => (await httpFrom(`${url}/ipfs/${keep.cid}`, { localAddress: a })).status === 200,
      'client a to be admitted again',
    )
  })
})

describe('node gRPC limits: concurrent streams per connection', () => {
  let cluster: TestCluster
  before(async () => {
    cluster = await startCluster({ nodes: 1, env: { MYCEL_GRPC_MAX_CONCURRENT_STREAMS: '3' } })
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('a connection past MYCEL_GRPC_MAX_CONCURRENT_STREAMS waits for a stream to finish', async () => {
    const client = blockClient(cluster.nodeAddress(0))
    const stats = (deadlineMs: number) =>
      new Promise<{ code?: number; ms: number }>((resolve) => {
        const started = Date.now()
        client.getNodeStats({}, new Metadata(), { deadline: new Date(Date.now() + deadlineMs) }, (err) =>
          resolve({ code: err?.code, ms: Date.now() - started }),
        )
      })
    try {
      assert.equal((await stats(10_000)).code, undefined)
      const streams = Array.from({ length: 3 }, () => {
        const s = client.putBlocks(new Metadata())
        s.on('data', () => undefined)
        s.on('error', () => undefined)
        return s
      })
      await sleep(300)
      assert.equal((await stats(1500)).code, status.DEADLINE_EXCEEDED, 'a fourth call waits')
      const waiting = stats(20_000)
      streams[0]?.end()
      assert.equal((await waiting).code, undefined, 'and runs once a stream is done')
      for (const s of streams) s.end()
    } finally {
      client.close()
    }
  })
})
