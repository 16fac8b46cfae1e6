import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { create, type KuboRPCClient } from 'kubo-rpc-client'
import { CID } from 'multiformats/cid'
import { sha256 as sha256Hasher } from 'multiformats/hashes/sha2'
import { type CarBlock, localUnixfs, parseAndVerifyCar, rawBlock, writeCar } from '../helpers/car.js'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { deterministicBytes, sha256 } from '../helpers/data.js'
import { kuboAdd } from '../helpers/http.js'

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const c of source) chunks.push(c)
  return Buffer.concat(chunks)
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes
}

/** POSTs to an RPC command with a multipart body of `files`; returns status and parsed JSON lines. */
async function rpc(
  url: string,
  command: string,
  query: string,
  files: Uint8Array[] = [],
): Promise<{ status: number; text: string; json: unknown }> {
  let body: FormData | undefined
  if (files.length > 0) {
    body = new FormData()
    for (const f of files) body.append('file', new Blob([f]), 'file')
  }
  const res = await fetch(`${url}/api/v0/${command}${query}`, { method: 'POST', body })
  const text = await res.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, text, json }
}

/** Kubo RPC cat, block and dag commands against a real 3-node cluster, through kubo-rpc-client. */
describe('Kubo RPC: cat, ls, block, dag', () => {
  let cluster: TestCluster
  let client: KuboRPCClient
  let url: string
  before(async () => {
    cluster = await startCluster({ nodes: 3 })
    url = cluster.gatewayUrl
    client = create({ url: `${url}/api/v0` })
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('cat streams a multi-block file, with offset and length, and by /ipfs/ path', async () => {
    const bytes = deterministicBytes(700_000, 'cat')
    const { lines } = await kuboAdd(url, [{ name: 'a.bin', bytes }], '?wrap-with-directory=true')
    const file = lines.find((l) => l.Name === 'a.bin')?.Hash as string
    const dir = lines.find((l) => l.Name === '')?.Hash as string
    assert.ok(file && dir)
    assert.equal(sha256(await collect(client.cat(CID.parse(file)))), sha256(bytes))
    const part = await collect(client.cat(CID.parse(file), { offset: 262_000, length: 10_000 }))
    assert.deepEqual(part, bytes.subarray(262_000, 272_000))
    assert.equal(sha256(await collect(client.cat(`/ipfs/${dir}/a.bin`))), sha256(bytes))
    const tail = await collect(client.cat(CID.parse(file), { offset: 699_990 }))
    assert.deepEqual(tail, bytes.subarray(699_990))
    assert.equal((await collect(client.cat(CID.parse(file), { offset: 800_000 }))).length, 0)
    await assert.rejects(collect(client.cat(CID.parse(dir))), /is a directory/)
    await assert.rejects(collect(client.cat(`/ipfs/${dir}/missing`)), /no link named "missing"/)
  })

  it('ls lists a directory with names, CIDs, sizes and types', async () => {
    const { lines } = await kuboAdd(
      url,
      [
        { name: 'd/x.txt', bytes: Buffer.from('x') },
        { name: 'd/sub/y.txt', bytes: Buffer.from('yy') },
      ],
      '?cid-version=1',
    )
    const dir = lines.find((l) => l.Name === 'd')?.Hash as string
    const out = await rpc(url, 'ls', `?arg=${dir}`)
    assert.equal(out.status, 200, out.text)
    const links = (out.json as { Objects: Array<{ Links: Array<{ Name: string; Type: number }> }> })
      .Objects[0]?.Links
    assert.deepEqual(
      links?.map((l) => [l.Name, l.Type]),
      [
        ['sub', 1],
        ['x.txt', 2],
      ],
    )
  })

  it('block put/get/stat: raw by default, dag-pb by cid-codec or format=v0, CIDs computed as Kubo does', async () => {
    const data = deterministicBytes(5000, 'block')
    const expectedRaw = (await rawBlock(data)).cid
    const put = await client.block.put(data)
    assert.equal(put.toString(), expectedRaw.toString())
    assert.deepEqual(Buffer.from(await client.block.get(put)), data)
    const stat = await client.block.stat(put)
    assert.equal(stat.cid.toString(), expectedRaw.toString())
    assert.equal(stat.size, 5000)

    const pb = dagPb.encode(
      dagPb.prepare({ Data: new Uint8Array([8, 1]), Links: [{ Hash: expectedRaw, Name: 'x' }] }),
    )
    const digest = await sha256Hasher.digest(pb)
    const v0 = await client.block.put(pb, { format: 'v0' })
    assert.equal(v0.toString(), CID.createV0(digest).toString())
    const v1 = await rpc(url, 'block/put', '?cid-codec=dag-pb', [pb])
    assert.equal(v1.status, 200, v1.text)
    assert.deepEqual(v1.json, { Key: CID.createV1(dagPb.code, digest).toString(), Size: pb.length })
    assert.deepEqual(Buffer.from(await client.block.get(v0)), Buffer.from(pb))
  })

  it("block put refuses what it cannot store as asked, in Kubo's error shape", async () => {
    const cases: Array<[string, Uint8Array, number, RegExp]> = [
      ['?cid-codec=dag-cbor', Buffer.from('x'), 400, /cid-codec "dag-cbor" is not supported/],
      ['?mhtype=sha3-256', Buffer.from('x'), 400, /mhtype "sha3-256" is not supported/],
      ['?bogus=1', Buffer.from('x'), 400, /unknown option "bogus"/],
      ['?cid-codec=dag-pb', Buffer.from('not protobuf \xff\xff'), 400, /not a valid dag-pb node/],
      ['', Buffer.alloc(1024 * 1024 + 1), 413, /exceeds the 1048576-byte limit/],
    ]
    for (const [query, body, status, message] of cases) {
      const out = await rpc(url, 'block/put', query, [body])
      assert.equal(out.status, status, `${query}: ${out.text}`)
      const err = out.json as { Message: string; Code: number; Type: string }
      assert.equal(err.Type, 'error')
      assert.match(err.Message, message)
    }
    const big = await rpc(url, 'block/put', '?allow-big-block=true', [Buffer.alloc(1024 * 1024 + 1, 7)])
    assert.equal(big.status, 200, big.text)
    const missing = await rpc(
      url,
      'block/get',
      '?arg=bafkreie7ohywtosou76tasm7j63yigtzxe7d5zqus4zu3j6oltvgtibeom',
    )
    assert.equal(missing.status, 404)
    assert.deepEqual(Object.keys(missing.json as object).sort(), ['Code', 'Message', 'Type'])
    const get = await fetch(`${url}/api/v0/block/get?arg=${(await rawBlock(Buffer.from('x'))).cid}`)
    assert.equal(get.status, 405)
  })

  it('dag export streams a CAR of every block, depth first; dag import of it round-trips', async () => {
    const bytes = deterministicBytes(1_100_000, 'export')
    const [added] = (await kuboAdd(url, [{ name: 'e.bin', bytes }], '?cid-version=1')).lines
    const root = CID.parse(added?.Hash as string)
    const local = await localUnixfs([{ path: 'e.bin', bytes }])
    assert.equal(root.toString(), local.root.toString())
    const car = await collect(client.dag.export(root))
    const parsed = await parseAndVerifyCar(car)
    assert.deepEqual(parsed.roots.map(String), [root.toString()])
    assert.deepEqual(
      parsed.blocks.map((b) => b.cid.toString()),
      local.dfs.map((b) => b.cid.toString()),
    )
    // Deterministic: the same DAG exports to the same bytes.
    assert.equal(sha256(await collect(client.dag.export(root))), sha256(car))

    // A DAG the cluster has never seen: import, then read it back every way.
    const fresh = deterministicBytes(600_000, 'import')
    const other = await localUnixfs([{ path: 'i.bin', bytes: fresh }], { chunkSize: 100_000 })
    const carIn = await writeCar([other.root], other.dfs)
    const results = []
    for await (const r of client.dag.import([carIn])) results.push(r)
    assert.deepEqual(
      results.map((r) => [r.root.cid.toString(), r.root.pinErrorMsg]),
      [[other.root.toString(), '']],
    )
    assert.equal(sha256(await collect(client.cat(other.root))), sha256(fresh))
    const back = await parseAndVerifyCar(await collect(client.dag.export(other.root)))
    assert.deepEqual(
      back.blocks.map((b) => b.cid.toString()),
      other.dfs.map((b) => b.cid.toString()),
    )
  })

  it('dag import reports stats and takes several CARs in one request', async () => {
    const a = await rawBlock(deterministicBytes(1000, 'multi-a'))
    const b = await rawBlock(deterministicBytes(2000, 'multi-b'))
    const out = await rpc(url, 'dag/import', '?stats=true', [
      await writeCar([a.cid], [a]),
      await writeCar([b.cid], [b]),
    ])
    assert.equal(out.status, 200, out.text)
    const lines = out.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    assert.deepEqual(lines, [
      { Root: { Cid: { '/': a.cid.toString() }, PinErrorMsg: '' } },
      { Root: { Cid: { '/': b.cid.toString() }, PinErrorMsg: '' } },
      { Stats: { BlockCount: 2, BlockBytesCount: 3000 } },
    ])
    // The same through kubo-rpc-client: one streamed file part per CAR.
    const c = await rawBlock(deterministicBytes(1500, 'multi-c'))
    const d = await rawBlock(deterministicBytes(2500, 'multi-d'))
    const roots: string[] = []
    for await (const r of client.dag.import([
      once(await writeCar([c.cid], [c])),
      once(await writeCar([d.cid], [d])),
    ])) {
      roots.push(r.root.cid.toString())
    }
    assert.deepEqual(roots, [c.cid.toString(), d.cid.toString()])
    assert.deepEqual(Buffer.from(await client.block.get(d.cid)), Buffer.from(d.bytes))
  })

  it('dag import rejects a CAR with one corrupt block and stores none of its blocks', async () => {
    const good: CarBlock[] = []
    for (let i = 0; i < 4; i++) good.push(await rawBlock(deterministicBytes(3000 + i, `corrupt-${i}`)))
    const bad = await rawBlock(deterministicBytes(4000, 'corrupt-bad'))
    const tampered = Buffer.from(bad.bytes)
    tampered[100] = (tampered[100] as number) ^ 0xff
    // The corrupt block comes last, after valid ones a naive importer would already have stored.
    const car = await writeCar([good[0]?.cid as CID], [...good, { cid: bad.cid, bytes: tampered }])
    await assert.rejects(async () => {
      for await (const _ of client.dag.import([car])) {
        // drain
      }
    }, /CAR file 1, block 5 \(.+\): block bytes do not hash to .+; nothing was imported/)
    for (const b of [...good, bad]) {
      const stat = await rpc(url, 'block/stat', `?arg=${b.cid}`)
      assert.equal(stat.status, 404, `${b.cid} must not be stored: ${stat.text}`)
    }
    // Two CARs where only the second is bad: the first is not stored either.
    const ok = await rawBlock(deterministicBytes(5000, 'corrupt-first-car'))
    const second = await writeCar([bad.cid], [{ cid: bad.cid, bytes: tampered }])
    const two = await rpc(url, 'dag/import', '', [await writeCar([ok.cid], [ok]), second])
    assert.equal(two.status, 400, two.text)
    assert.match((two.json as { Message: string }).Message, /CAR file 2, block 1/)
    assert.equal((await rpc(url, 'block/stat', `?arg=${ok.cid}`)).status, 404)
  })

  it('dag import: malformed and truncated CARs are 400, a root that is nowhere is reported', async () => {
    const junk = await rpc(url, 'dag/import', '', [Buffer.from('this is not a CAR file at all')])
    assert.equal(junk.status, 400, junk.text)
    assert.match((junk.json as { Message: string }).Message, /CAR file 1 is not a valid CAR/)

    const blocks = [
      await rawBlock(deterministicBytes(9000, 'trunc-a')),
      await rawBlock(deterministicBytes(9000, 'trunc-b')),
    ]
    const whole = await writeCar([blocks[0]?.cid as CID], blocks)
    const truncated = await rpc(url, 'dag/import', '', [whole.subarray(0, whole.length - 100)])
    assert.equal(truncated.status, 400, truncated.text)
    assert.match((truncated.json as { Message: string }).Message, /CAR file 1 is truncated/)
    for (const b of blocks) assert.equal((await rpc(url, 'block/stat', `?arg=${b.cid}`)).status, 404)

    // A section length of 1 TiB must be refused from its prefix, not buffered.
    const header = await writeCar([blocks[0]?.cid as CID], [])
    const tib = Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x20])
    const enormous = await rpc(url, 'dag/import', '', [Buffer.concat([header, tib, Buffer.alloc(64)])])
    assert.equal(enormous.status, 400, enormous.text)
    assert.match(
      (enormous.json as { Message: string }).Message,
      /declares a 1099511627776-byte block section at byte \d+, over the 2097152-byte block limit/,
    )

    const absent = await rawBlock(deterministicBytes(10, 'absent-root'))
    const present = await rawBlock(deterministicBytes(10, 'present-block'))
    const orphan = await rpc(url, 'dag/import', '', [await writeCar([absent.cid], [present])])
    assert.equal(orphan.status, 200, orphan.text)
    assert.deepEqual(JSON.parse(orphan.text), {
      Root: {
        Cid: { '/': absent.cid.toString() },
        PinErrorMsg: `root ${absent.cid} is neither in the CAR nor stored in the cluster`,
      },
    })

    const unknown = await rpc(url, 'dag/import', '?pin=true', [whole])
    assert.equal(unknown.status, 400)
    assert.match((unknown.json as { Message: string }).Message, /unknown option "pin"/)
  })

  it('dag export of an unknown CID is a 404 before any CAR byte', async () => {
    const out = await rpc(
      url,
      'dag/export',
      '?arg=bafkreie7ohywtosou76tasm7j63yigtzxe7d5zqus4zu3j6oltvgtibeom',
    )
    assert.equal(out.status, 404)
    assert.match((out.json as { Message: string }).Message, /not found/)
    const bad = await rpc(url, 'dag/export', '?arg=nope')
    assert.equal(bad.status, 400)
    assert.match((bad.json as { Message: string }).Message, /invalid CID/)
  })
})
