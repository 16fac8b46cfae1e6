import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { deterministicBytes, sha256 } from '../helpers/data.js'
import { kuboAdd, rawUpload } from '../helpers/http.js'

/** Sends raw bytes over a fresh connection; resolves with what came back before the socket closed. */
function rawHttp(url: string, payload: Buffer, opts: { destroyAfterWrite?: boolean } = {}): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const sock = connect(Number(port), hostname)
    let out = ''
    sock.on('data', (d) => (out += d.toString()))
    sock.on('close', () => resolve(out))
    sock.on('error', () => undefined)
    sock.write(payload, () => {
      if (opts.destroyAfterWrite) sock.destroy()
    })
    setTimeout(() => sock.destroy(), 5000)
  })
}

describe('bad input is rejected clearly and leaves the service and data intact', () => {
  let cluster: TestCluster
  const limit = 4 * 1024 * 1024
  let keep: { cid: string; hash: string }
  before(async () => {
    cluster = await startCluster({ nodes: 3, gatewayEnv: { MYCEL_MAX_UPLOAD_BYTES: String(limit) } })
    const bytes = deterministicBytes(700_000, 'keep')
    keep = { cid: (await rawUpload(cluster.gatewayUrl, bytes)).body.cid as string, hash: sha256(bytes) }
  })
  after(async () => {
    // Whatever happened above, previously stored content still reads back intact.
    const res = await fetch(`${cluster.gatewayUrl}/ipfs/${keep.cid}`)
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), keep.hash)
    await cluster?.destroy()
  })

  it('malformed CID → 400', async () => {
    for (const bad of ['not-a-cid', 'bafy', 'QmNotBase58!!', 'zzzzzzzz']) {
      const res = await fetch(`${cluster.gatewayUrl}/ipfs/${bad}`)
      assert.equal(res.status, 400, bad)
      assert.match(await res.text(), /invalid CID/)
    }
  })

  it('unknown CID → 404', async () => {
    const res = await fetch(
      `${cluster.gatewayUrl}/ipfs/bafkreie7ohywtosou76tasm7j63yigtzxe7d5zqus4zu3j6oltvgtibeom`,
    )
    assert.equal(res.status, 404)
    assert.match(await res.text(), /not found/)
  })

  it('oversized body → 413, by declared length and while streaming', async () => {
    const declared = await rawUpload(cluster.gatewayUrl, deterministicBytes(limit + 1, 'big'))
    assert.equal(declared.status, 413)
    assert.match(declared.text, /exceeds the limit of 4194304 bytes/)
    let sent = 0
    const chunked = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent > limit + 2 * 1024 * 1024) return c.close()
        sent += 256 * 1024
        c.enqueue(deterministicBytes(256 * 1024, `chunk-${sent}`))
      },
    })
    const res = await fetch(`${cluster.gatewayUrl}/mycel/v1/upload`, {
      method: 'POST',
      body: chunked,
      duplex: 'half',
    }).catch((err: unknown) => err as Error)
    if (res instanceof Response) assert.equal(res.status, 413)
    const multi = await kuboAdd(cluster.gatewayUrl, [
      { name: 'a', bytes: deterministicBytes(limit / 2 + 10, 'a') },
      { name: 'b', bytes: deterministicBytes(limit / 2 + 10, 'b') },
    ])
    assert.equal(multi.status, 413, 'the limit covers the whole request, not each part')
    assert.equal(JSON.parse(multi.text).Type, 'error')
  })

  it('truncated multipart body → 400 in Kubo error shape', async () => {
    const boundary = 'xxBOUNDARYxx'
    const body = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n` +
        `Content-Type: application/octet-stream\r\n\r\nsome bytes but never the closing boundary`,
    )
    const head = Buffer.from(
      `POST /api/v0/add HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\n` +
        `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    )
    const answer = await rawHttp(cluster.gatewayUrl, Buffer.concat([head, body]))
    assert.match(answer, /^HTTP\/1\.1 400/)
    assert.match(answer, /"Message":"malformed or truncated multipart body/)
  })

  it('a client that disconnects mid-upload gets nothing acknowledged and the gateway keeps serving', async () => {
    const head = Buffer.from(
      `POST /mycel/v1/upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${3 * 1024 * 1024}\r\n\r\n`,
    )
    const answer = await rawHttp(
      cluster.gatewayUrl,
      Buffer.concat([head, deterministicBytes(1024 * 1024, 'partial')]),
      {
        destroyAfterWrite: true,
      },
    )
    assert.equal(answer, '')
    await sleep(200)
    assert.equal((await fetch(`${cluster.gatewayUrl}/healthz`)).status, 200)
    const up = await rawUpload(cluster.gatewayUrl, deterministicBytes(10_000, 'after-disconnect'))
    assert.equal(up.status, 201)
  })

  it('bad options → 400 with the reason; unsupported ones are never ignored', async () => {
    const cases: Array<[string, RegExp]> = [
      ['?cid-version=2', /cid-version must be 0 or 1/],
      ['?chunker=rabin', /chunker "rabin" is not supported/],
      ['?chunker=size-2000000', /chunk size must be between/],
      ['?durability=ec:4+2', /ec:4\+2 needs 6 storage nodes \(one per shard\); the cluster has 3/],
      ['?durability=ec:0+1', /1 <= K <= 24/],
      ['?durability=ec:2+7', /1 <= M <= 6/],
      ['?durability=raid', /durability must be replicate:R or ec:K\+M/],
      ['?durability=replicate:9', /replicate:R needs 1 <= R <= 3/],
      ['?trickle=true', /unknown option "trickle"/],
    ]
    for (const [query, message] of cases) {
      const add = await kuboAdd(cluster.gatewayUrl, [{ name: 'x', bytes: Buffer.from('x') }], query)
      assert.equal(add.status, 400, query)
      assert.match(JSON.parse(add.text).Message, message)
    }
    const raw = await rawUpload(cluster.gatewayUrl, Buffer.from('x'), '?frobnicate=1')
    assert.equal(raw.status, 400)
    assert.match(raw.text, /unknown option "frobnicate"/)
  })

  it('wrong methods → 405 with Allow', async () => {
    const res = await fetch(`${cluster.gatewayUrl}/ipfs/${keep.cid}`, { method: 'DELETE' })
    assert.equal(res.status, 405)
    assert.equal(res.headers.get('allow'), 'GET, HEAD, OPTIONS')
    const rpc = await fetch(`${cluster.gatewayUrl}/api/v0/add`)
    assert.equal(rpc.status, 405)
  })

  it('durability=replicate:1 stores one copy', async () => {
    const up = await rawUpload(
      cluster.gatewayUrl,
      deterministicBytes(1000, 'one-copy'),
      '?durability=replicate:1',
    )
    assert.equal(up.status, 201, up.text)
    const res = await fetch(`${cluster.gatewayUrl}/ipfs/${up.body.cid}`)
    assert.equal(res.status, 200)
  })
})
