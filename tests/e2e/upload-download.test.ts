import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { DEFAULT_IMPORT_PARAMS, kuboImporterOptions } from '@mycel/core'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { importer } from 'ipfs-unixfs-importer'
import { startCluster, TEST_TMP, type TestCluster } from '../helpers/cluster.js'
import { deterministicBytes, sha256, sha256OfResponse, writeDeterministicFile } from '../helpers/data.js'
import { kuboAdd, rawUpload } from '../helpers/http.js'
import { KUBO_DIR_VECTORS, KUBO_VECTORS } from '../helpers/kubo-vectors.js'

/** The CID the reference JS importer gives, with Kubo's `--cid-version=1` parameters. */
async function referenceCid(bytes: Uint8Array): Promise<string> {
  let last: string | undefined
  for await (const entry of importer(
    [{ content: [bytes] }],
    new MemoryBlockstore(),
    kuboImporterOptions(DEFAULT_IMPORT_PARAMS),
  )) {
    last = entry.cid.toString()
  }
  return last as string
}

describe('upload and download through the gateway (3 nodes, R=3, W=2)', () => {
  let cluster: TestCluster
  let dir: string
  before(async () => {
    cluster = await startCluster({ nodes: 3 })
    dir = await mkdtemp(join(TEST_TMP, 'files-'))
  })
  after(async () => {
    await cluster?.destroy()
    await rm(dir, { recursive: true, force: true })
  })

  describe('CID parity with Kubo `ipfs add --cid-version=1`', () => {
    for (const v of KUBO_VECTORS) {
      it(`${v.size} bytes gives ${v.cidV1}`, async () => {
        const bytes = deterministicBytes(v.size, v.seed)
        assert.equal(await referenceCid(bytes), v.cidV1, 'reference importer')
        const up = await rawUpload(cluster.gatewayUrl, bytes)
        assert.equal(up.status, 201, up.text)
        assert.equal(up.body.cid, v.cidV1)
        const add = await kuboAdd(cluster.gatewayUrl, [{ name: 'f', bytes }])
        assert.equal(add.status, 200, add.text)
        assert.deepEqual(add.lines, [{ Name: 'f', Hash: v.cidV1, Size: v.kuboSize }])
        const v0 = await kuboAdd(cluster.gatewayUrl, [{ name: 'f', bytes }], '?cid-version=0')
        assert.equal(v0.lines[0]?.Hash, v.cidV0, 'cid-version=0 matches Kubo default add')
      })
    }
  })

  describe('directory CID parity with Kubo `ipfs add -w`', () => {
    for (const v of KUBO_DIR_VECTORS) {
      it(`${v.files.map((f) => f.name).join(' + ')} wrapped gives ${v.cidV1}`, async () => {
        const files = v.files.map((f) => ({ name: f.name, bytes: deterministicBytes(f.size, f.seed) }))
        const add = await kuboAdd(cluster.gatewayUrl, files, '?wrap-with-directory=true')
        assert.equal(add.status, 200, add.text)
        assert.deepEqual(add.lines.at(-1), { Name: '', Hash: v.cidV1, Size: add.lines.at(-1)?.Size })
        const v0 = await kuboAdd(cluster.gatewayUrl, files, '?wrap-with-directory=true&cid-version=0')
        assert.equal(v0.lines.at(-1)?.Hash, v.cidV0)
        for (const f of files) {
          const res = await fetch(`${cluster.gatewayUrl}/ipfs/${v.cidV1}/${f.name}`)
          assert.equal(res.status, 200)
          assert.equal(sha256(Buffer.from(await res.arrayBuffer())), sha256(f.bytes))
        }
      })
    }
  })

  describe('round trip of random files, compared by hash', () => {
    const sizes = [0, 1, 1000, 262_143, 262_144, 262_145, 3 * 1024 * 1024 + 7, 100 * 1024 * 1024]
    for (const size of sizes) {
      it(`${size} bytes`, async () => {
        const path = join(dir, `rt-${size}`)
        const digest = await writeDeterministicFile(path, size, `roundtrip-${size}`)
        const up = await rawUpload(cluster.gatewayUrl, path)
        assert.equal(up.status, 201, up.text)
        assert.equal(up.body.size, size)
        const res = await fetch(`${cluster.gatewayUrl}/ipfs/${up.body.cid}`)
        assert.equal(res.status, 200)
        assert.equal(res.headers.get('content-length'), String(size))
        assert.equal(res.headers.get('cache-control'), 'public, max-age=29030400, immutable')
        assert.equal(res.headers.get('etag'), `"${up.body.cid}"`)
        const got = await sha256OfResponse(res)
        assert.equal(got.bytes, size)
        assert.equal(got.hash, digest)
        await rm(path)
      })
    }

    it('multipart add of several files returns one line per file', async () => {
      const a = deterministicBytes(5000, 'multi-a')
      const b = deterministicBytes(300_000, 'multi-b')
      const add = await kuboAdd(cluster.gatewayUrl, [
        { name: 'a.txt', bytes: a },
        { name: 'b.bin', bytes: b },
      ])
      assert.equal(add.status, 200, add.text)
      assert.deepEqual(
        add.lines.map((l) => l.Name),
        ['a.txt', 'b.bin'],
      )
      for (const [line, bytes] of [
        [add.lines[0], a],
        [add.lines[1], b],
      ] as const) {
        const res = await fetch(`${cluster.gatewayUrl}/ipfs/${line?.Hash}`)
        assert.equal(sha256(Buffer.from(await res.arrayBuffer())), sha256(bytes))
      }
    })

    it('HEAD answers headers without a body, and If-None-Match gives 304', async () => {
      const up = await rawUpload(cluster.gatewayUrl, deterministicBytes(1234, 'head'))
      const head = await fetch(`${cluster.gatewayUrl}/ipfs/${up.body.cid}`, { method: 'HEAD' })
      assert.equal(head.status, 200)
      assert.equal(head.headers.get('content-length'), '1234')
      assert.equal((await head.arrayBuffer()).byteLength, 0)
      const cached = await fetch(`${cluster.gatewayUrl}/ipfs/${up.body.cid}`, {
        headers: { 'If-None-Match': `"${up.body.cid}"` },
      })
      assert.equal(cached.status, 304)
    })

    it('stores every block on all three nodes', async () => {
      const up = await rawUpload(cluster.gatewayUrl, deterministicBytes(2 * 262_144, 'replicas'))
      assert.equal(up.status, 201)
      const status = (await (await fetch(`${cluster.gatewayUrl}/mycel/v1/status`)).json()) as {
        nodes: Array<{ state: string; blocks: number }>
      }
      const counts = status.nodes.map((n) => n.blocks)
      assert.ok(
        counts.every((c) => c === counts[0] && c > 0),
        `block counts ${counts}`,
      )
    })
  })

  describe('range requests', () => {
    const size = 3 * 262_144 + 5000
    const bytes = deterministicBytes(size, 'ranges')
    let cid: string
    before(async () => {
      cid = (await rawUpload(cluster.gatewayUrl, bytes)).body.cid as string
    })
    const cases: Array<[string, number, number]> = [
      ['bytes=0-99', 0, 99],
      ['bytes=1000-2000', 1000, 2000],
      ['bytes=262100-262200', 262_100, 262_200],
      ['bytes=262144-524288', 262_144, 524_288],
      [`bytes=${size - 10}-`, size - 10, size - 1],
      ['bytes=-777', size - 777, size - 1],
      [`bytes=5-${size + 1000}`, 5, size - 1],
    ]
    for (const [header, start, end] of cases) {
      it(`${header} → 206 ${start}-${end}`, async () => {
        const res = await fetch(`${cluster.gatewayUrl}/ipfs/${cid}`, { headers: { Range: header } })
        assert.equal(res.status, 206)
        assert.equal(res.headers.get('content-range'), `bytes ${start}-${end}/${size}`)
        const body = Buffer.from(await res.arrayBuffer())
        assert.equal(body.length, end - start + 1)
        assert.ok(body.equals(bytes.subarray(start, end + 1)))
      })
    }
    it('an unsatisfiable range → 416 with Content-Range bytes */size', async () => {
      const res = await fetch(`${cluster.gatewayUrl}/ipfs/${cid}`, { headers: { Range: `bytes=${size}-` } })
      assert.equal(res.status, 416)
      assert.equal(res.headers.get('content-range'), `bytes */${size}`)
    })
    it('several ranges are answered with the whole body (documented single-range policy)', async () => {
      const res = await fetch(`${cluster.gatewayUrl}/ipfs/${cid}`, { headers: { Range: 'bytes=0-1,5-6' } })
      assert.equal(res.status, 200)
      assert.equal(Buffer.from(await res.arrayBuffer()).length, size)
    })
  })
})
