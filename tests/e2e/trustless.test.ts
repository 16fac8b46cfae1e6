import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { exporter } from 'ipfs-unixfs-exporter'
import { CID } from 'multiformats/cid'
import { sha256 as sha256Hasher } from 'multiformats/hashes/sha2'
import { localUnixfs, parseAndVerifyCar } from '../helpers/car.js'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { deterministicBytes, sha256 } from '../helpers/data.js'
import { kuboAdd, requestWithTrailers } from '../helpers/http.js'

const CAR_TYPE = 'application/vnd.ipld.car; version=1; order=dfs; dups=n'

/** Trustless gateway responses (raw blocks, CAR streams) on /ipfs/, checked by re-verifying every byte. */
describe('trustless gateway: application/vnd.ipld.raw and application/vnd.ipld.car', () => {
  let cluster: TestCluster
  let url: string
  const bytes = deterministicBytes(900_000, 'trustless')
  let file: CID
  let dir: CID
  let local: Awaited<ReturnType<typeof localUnixfs>>
  before(async () => {
    cluster = await startCluster({ nodes: 3 })
    url = cluster.gatewayUrl
    const { lines } = await kuboAdd(
      url,
      [
        { name: 'big.bin', bytes },
        { name: 'small.txt', bytes: Buffer.from('hello trustless\n') },
      ],
      '?wrap-with-directory=true',
    )
    file = CID.parse(lines.find((l) => l.Name === 'big.bin')?.Hash as string)
    dir = CID.parse(lines.find((l) => l.Name === '')?.Hash as string)
    local = await localUnixfs(
      [
        { path: 'big.bin', bytes },
        { path: 'small.txt', bytes: Buffer.from('hello trustless\n') },
      ],
      { wrapWithDirectory: true },
    )
    assert.equal(dir.toString(), local.root.toString())
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('raw block by Accept and by ?format=raw, with the spec headers; HEAD and If-None-Match', async () => {
    for (const [query, headers] of [
      ['', { Accept: 'application/vnd.ipld.raw' }],
      ['?format=raw', {}],
      ['?format=raw', { Accept: 'text/html' }],
    ] as const) {
      const res = await fetch(`${url}/ipfs/${file}${query}`, { headers })
      assert.equal(res.status, 200)
      const body = Buffer.from(await res.arrayBuffer())
      assert.deepEqual(createHash('sha256').update(body).digest(), Buffer.from(file.multihash.digest))
      assert.equal(res.headers.get('content-type'), 'application/vnd.ipld.raw')
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff')
      assert.equal(res.headers.get('cache-control'), 'public, max-age=29030400, immutable')
      assert.equal(res.headers.get('etag'), `"${file}.raw"`)
      assert.match(
        res.headers.get('content-disposition') ?? '',
        new RegExp(`^attachment; filename="${file}.bin"`),
      )
      assert.equal(res.headers.get('content-length'), String(body.length))
      assert.match(res.headers.get('vary') ?? '', /Accept/)
    }
    const head = await fetch(`${url}/ipfs/${file}?format=raw`, { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('etag'), `"${file}.raw"`)
    assert.equal((await head.arrayBuffer()).byteLength, 0)
    const cached = await fetch(`${url}/ipfs/${file}?format=raw`, {
      headers: { 'If-None-Match': `"${file}.raw"` },
    })
    assert.equal(cached.status, 304)
    // The raw block of a path's end: the leaf of the directory.
    const small = await fetch(`${url}/ipfs/${dir}/small.txt?format=raw`)
    assert.equal(await small.text(), 'hello trustless\n')
  })

  it('CAR of the whole DAG: spec Content-Type, every block verified, depth-first order, same bytes every time', async () => {
    const res = await fetch(`${url}/ipfs/${dir}`, { headers: { Accept: 'application/vnd.ipld.car' } })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-type'), CAR_TYPE)
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff')
    assert.equal(res.headers.get('cache-control'), 'public, max-age=29030400, immutable')
    assert.match(
      res.headers.get('content-disposition') ?? '',
      new RegExp(`^attachment; filename="${dir}.car"`),
    )
    assert.match(res.headers.get('etag') ?? '', new RegExp(`^W/"${dir}\\.car\\.[0-9a-f]+"$`))
    const car = Buffer.from(await res.arrayBuffer())
    const parsed = await parseAndVerifyCar(car)
    assert.deepEqual(parsed.roots.map(String), [dir.toString()])
    assert.deepEqual(
      parsed.blocks.map((b) => b.cid.toString()),
      local.dfs.map((b) => b.cid.toString()),
    )
    // The client can rebuild the file from the verified blocks alone.
    const store = new MemoryBlockstore()
    for (const b of parsed.blocks) await store.put(b.cid as never, b.bytes)
    const entry = await exporter(`${dir}/big.bin`, store)
    assert.equal(entry.type, 'file')
    if (entry.type !== 'file') return
    const chunks: Uint8Array[] = []
    for await (const c of entry.content()) chunks.push(c)
    assert.equal(sha256(Buffer.concat(chunks)), sha256(bytes))
    const again = Buffer.from(await (await fetch(`${url}/ipfs/${dir}?format=car`)).arrayBuffer())
    assert.equal(sha256(again), sha256(car))
    const etag = res.headers.get('etag') as string
    const cached = await fetch(`${url}/ipfs/${dir}?format=car`, { headers: { 'If-None-Match': etag } })
    assert.equal(cached.status, 304)
  })

  it('CAR of a path: the blocks proving the path first, then dag-scope block, entity or all', async () => {
    const order = local.dfs.map((b) => b.cid.toString())
    const fileBlocks = order.slice(order.indexOf(file.toString()), order.indexOf(file.toString()) + 5)
    const get = async (query: string) => {
      const res = await fetch(`${url}/ipfs/${dir}/big.bin?format=car${query}`)
      assert.equal(res.status, 200)
      const parsed = await parseAndVerifyCar(Buffer.from(await res.arrayBuffer()))
      assert.deepEqual(parsed.roots.map(String), [dir.toString()])
      return { blocks: parsed.blocks.map((b) => b.cid.toString()), etag: res.headers.get('etag') }
    }
    const block = await get('&dag-scope=block')
    assert.deepEqual(block.blocks, [dir.toString(), file.toString()])
    const entity = await get('&dag-scope=entity')
    // 900 000 bytes: a root and 4 raw leaves (256 KiB chunks).
    assert.deepEqual(entity.blocks, [dir.toString(), ...fileBlocks])
    const all = await get('')
    assert.deepEqual(all.blocks, entity.blocks)
    assert.notEqual(block.etag, entity.etag)
    // A directory's entity is the directory block alone; all is the whole tree.
    const dirEntity = await fetch(`${url}/ipfs/${dir}?format=car&dag-scope=entity`)
    const dirBlocks = (await parseAndVerifyCar(Buffer.from(await dirEntity.arrayBuffer()))).blocks
    assert.deepEqual(
      dirBlocks.map((b) => b.cid.toString()),
      [dir.toString()],
    )
    const dups = await fetch(`${url}/ipfs/${file}`, {
      headers: { Accept: 'application/vnd.ipld.car; dups=y' },
    })
    assert.equal(dups.headers.get('content-type'), 'application/vnd.ipld.car; version=1; order=dfs; dups=y')
    await dups.arrayBuffer()
  })

  it('entity-bytes returns only the blocks holding the requested bytes of the file', async () => {
    const order = local.dfs.map((b) => b.cid.toString())
    const at = order.indexOf(file.toString())
    // 900 000 bytes in 256 KiB chunks: leaves hold 0-262143, -524287, -786431, -899999.
    const leaves = order.slice(at + 1, at + 5)
    const car = async (range: string) => {
      const res = await fetch(`${url}/ipfs/${dir}/big.bin?format=car&entity-bytes=${range}`)
      assert.equal(res.status, 200, range)
      const parsed = await parseAndVerifyCar(Buffer.from(await res.arrayBuffer()))
      return { blocks: parsed.blocks.map((b) => b.cid.toString()), etag: res.headers.get('etag') }
    }
    const prefix = [dir.toString(), file.toString()]
    assert.deepEqual((await car('0:0')).blocks, [...prefix, leaves[0]])
    assert.deepEqual((await car('300000:600000')).blocks, [...prefix, leaves[1], leaves[2]])
    assert.deepEqual((await car('262144:*')).blocks, [...prefix, ...leaves.slice(1)])
    assert.deepEqual((await car('-1000:*')).blocks, [...prefix, leaves[3]])
    assert.deepEqual((await car('499:-200000')).blocks, [...prefix, leaves[0], leaves[1], leaves[2]])
    // Outside the file: as dag-scope=block, so the client can see the file's real size.
    assert.deepEqual((await car('2000000:*')).blocks, prefix)
    assert.notEqual((await car('0:0')).etag, (await car('0:1')).etag)
  })

  it('HEAD of a CAR answers headers only; a missing root is 404 before any byte', async () => {
    const head = await fetch(`${url}/ipfs/${file}?format=car`, { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('content-type'), CAR_TYPE)
    assert.equal((await head.arrayBuffer()).byteLength, 0)
    const unknown = 'bafkreie7ohywtosou76tasm7j63yigtzxe7d5zqus4zu3j6oltvgtibeom'
    for (const query of ['?format=car', '?format=raw']) {
      const res = await fetch(`${url}/ipfs/${unknown}${query}`)
      assert.equal(res.status, 404, query)
      assert.match(await res.text(), /not found/)
    }
  })

  it('a block missing below the root: the gateway cuts the CAR, dag/export ends with the X-Stream-Error trailer', async () => {
    const absent = CID.createV1(0x55, await sha256Hasher.digest(Buffer.from('never stored')))
    const node = dagPb.encode(
      dagPb.prepare({ Data: new Uint8Array([8, 1]), Links: [{ Hash: absent, Name: 'gone' }] }),
    )
    const form = new FormData()
    form.append('file', new Blob([node]), 'node')
    const put = await fetch(`${url}/api/v0/block/put?cid-codec=dag-pb`, { method: 'POST', body: form })
    const key = ((await put.json()) as { Key: string }).Key
    // Path gateway (Kubo's too): the connection is cut, so the CAR never looks complete.
    const res = await fetch(`${url}/ipfs/${key}?format=car`)
    assert.equal(res.status, 200)
    await assert.rejects(res.arrayBuffer(), /terminated/)
    // Kubo RPC: the body ends cleanly and the declared trailer carries the error (go-ipfs-cmds).
    const rpc = await requestWithTrailers(`${url}/api/v0/dag/export?arg=${key}`)
    assert.equal(rpc.status, 200)
    assert.equal(rpc.headers.trailer, 'X-Stream-Error')
    assert.equal(rpc.complete, true)
    assert.match(rpc.trailers['x-stream-error'] ?? '', /not found/)
    const { blocks } = await parseAndVerifyCar(rpc.body).catch(() => ({ blocks: [] }))
    assert.ok(!blocks.some((b) => b.cid.equals(absent)))
  })

  it('unsupported formats and parameters are 400 with the reason, never another format', async () => {
    const cases: Array<[string, Record<string, string>, RegExp]> = [
      ['?format=bogus', {}, /unknown format "bogus"/],
      ['?format=ipns-record', {}, /IPNS records are not served/],
      ['', { Accept: 'application/vnd.ipld.car; version=2' }, /CAR version 2 is not supported/],
      ['?format=car&car-order=weird', {}, /CAR order "weird" is not supported/],
      ['?format=car&dag-scope=everything', {}, /dag-scope must be block, entity or all/],
      ['?format=car&entity-bytes=abc', {}, /entity-bytes must be from:to/],
      ['?format=car&entity-bytes=10:5', {}, /the end is before the start/],
      ['?format=car&dag-scope=all&entity-bytes=0:1', {}, /entity-bytes needs dag-scope=entity/],
      ['?format=raw&dag-scope=block', {}, /"dag-scope" applies only to CAR responses/],
    ]
    for (const [query, headers, message] of cases) {
      const res = await fetch(`${url}/ipfs/${file}${query}`, { headers })
      assert.equal(res.status, 400, `${query} ${JSON.stringify(headers)}`)
      assert.match(await res.text(), message)
    }
  })
})
