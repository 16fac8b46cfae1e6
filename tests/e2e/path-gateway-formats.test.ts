import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { gunzipSync } from 'node:zlib'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import * as dagPb from '@ipld/dag-pb'
import { create } from 'kubo-rpc-client'
import { CID } from 'multiformats/cid'
import { sha256 as sha256Hasher } from 'multiformats/hashes/sha2'
import { type CarBlock, rawBlock, writeCar } from '../helpers/car.js'
import { startCluster, TEST_TMP, type TestCluster } from '../helpers/cluster.js'
import { deterministicBytes } from '../helpers/data.js'
import { requestWithTrailers } from '../helpers/http.js'

const run = promisify(execFile)

async function block(codec: typeof dagCbor | typeof dagJson, value: unknown): Promise<CarBlock> {
  const bytes = codec.encode(value)
  return { cid: CID.createV1(codec.code, await sha256Hasher.digest(bytes)), bytes }
}

/** A directory tree Kubo's add would build: nested, unicode and spaces, empty file and directory, a multi-block file. */
const TREE: Array<{ path: string; bytes?: Uint8Array }> = [
  { path: 'site/index.txt', bytes: Buffer.from('top\n') },
  { path: 'site/sub dir/żółw ünï.txt', bytes: Buffer.from('unicode name\n') },
  { path: 'site/sub dir/empty.txt', bytes: new Uint8Array() },
  { path: 'site/big.bin', bytes: deterministicBytes(600_000, 'tar-big') },
  { path: 'site/nothing-here' },
]

async function addTree(url: string, tree = TREE, query = '?cid-version=1'): Promise<Map<string, string>> {
  const form = new FormData()
  for (const e of tree) {
    if (e.bytes === undefined) {
      form.append('file', new Blob([], { type: 'application/x-directory' }), encodeURIComponent(e.path))
    } else {
      form.append('file', new Blob([e.bytes]), encodeURIComponent(e.path))
    }
  }
  const res = await fetch(`${url}/api/v0/add${query}`, { method: 'POST', body: form })
  const text = await res.text()
  assert.equal(res.status, 200, text)
  const lines = text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { Name: string; Hash: string })
  return new Map(lines.map((l) => [l.Name, l.Hash]))
}

/** Extracts a TAR with GNU tar (an independent reader) and lists every entry with its bytes. */
async function extract(tarBytes: Uint8Array): Promise<{ dir: string; files: Map<string, Buffer | 'dir'> }> {
  const dir = await mkdtemp(join(TEST_TMP, 'tar-'))
  const tarFile = join(dir, '..', `${dir.split('/').at(-1)}.tar`)
  const { writeFile } = await import('node:fs/promises')
  await writeFile(tarFile, tarBytes)
  await run('tar', ['-xf', tarFile, '-C', dir])
  await rm(tarFile)
  const files = new Map<string, Buffer | 'dir'>()
  const walk = async (rel: string) => {
    for (const name of await readdir(join(dir, rel))) {
      const p = rel === '' ? name : `${rel}/${name}`
      if ((await stat(join(dir, p))).isDirectory()) {
        files.set(p, 'dir')
        await walk(p)
      } else files.set(p, await readFile(join(dir, p)))
    }
  }
  await walk('')
  return { dir, files }
}

function expectedTree(rootName: string): Map<string, Buffer | 'dir'> {
  const out = new Map<string, Buffer | 'dir'>([[rootName, 'dir']])
  for (const e of TREE) {
    const rel = e.path.slice('site/'.length)
    const parts = rel.split('/')
    for (let i = 1; i < parts.length; i++) out.set(`${rootName}/${parts.slice(0, i).join('/')}`, 'dir')
    out.set(`${rootName}/${rel}`, e.bytes === undefined ? 'dir' : Buffer.from(e.bytes))
  }
  return out
}

/**
 * Path gateway formats beyond UnixFS bytes (dag-json, dag-cbor, json, cbor, TAR) and the Kubo
 * RPC commands get, repo/stat and the X-Stream-Error trailer of cat, on a real 3-node cluster.
 */
describe('path gateway: IPLD documents, TAR; RPC get, repo/stat, stream errors', () => {
  let cluster: TestCluster
  let url: string
  let file: string
  let fileBytes: Buffer
  const docs: Record<string, CarBlock> = {}
  before(async () => {
    cluster = await startCluster({ nodes: 3 })
    url = cluster.gatewayUrl
    fileBytes = deterministicBytes(1000, 'doc-file')
    const form = new FormData()
    form.append('file', new Blob([fileBytes]), 'f.bin')
    file = (
      (await (await fetch(`${url}/api/v0/add`, { method: 'POST', body: form })).json()) as { Hash: string }
    ).Hash
    docs.c = await block(dagCbor, { hello: 'this is not a link' })
    docs.b = await block(dagCbor, { bar: docs.c.cid })
    docs.a = await block(dagCbor, { foo: { link: docs.b.cid, n: 1 }, file: CID.parse(file) })
    docs.j = await block(dagJson, { name: 'json doc', next: docs.c.cid })
    const car = await writeCar([docs.a.cid, docs.j.cid], [docs.a, docs.b, docs.c, docs.j])
    const upload = new FormData()
    upload.append('file', new Blob([car]), 'docs.car')
    const res = await fetch(`${url}/api/v0/dag/import`, { method: 'POST', body: upload })
    assert.equal(res.status, 200, await res.text())
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('serves dag-cbor and dag-json documents as stored, with codec ETag, Content-Disposition and ranges', async () => {
    const a = docs.a as CarBlock
    const res = await fetch(`${url}/ipfs/${a.cid}`)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-type'), 'application/vnd.ipld.dag-cbor')
    assert.equal(res.headers.get('etag'), `"${a.cid}.dag-cbor"`)
    assert.equal(res.headers.get('content-disposition'), `attachment; filename="${a.cid}.cbor"`)
    assert.equal(res.headers.get('cache-control'), 'public, max-age=29030400, immutable')
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), Buffer.from(a.bytes))
    for (const [query, headers] of [
      ['?format=dag-cbor', {}],
      ['?format=cbor', {}],
      ['', { Accept: 'application/cbor' }],
    ] as const) {
      const r = await fetch(`${url}/ipfs/${a.cid}${query}`, { headers })
      assert.equal(r.status, 200, query)
      assert.deepEqual(Buffer.from(await r.arrayBuffer()), Buffer.from(a.bytes))
    }
    const cached = await fetch(`${url}/ipfs/${a.cid}`, {
      headers: { 'If-None-Match': `"${a.cid}.dag-cbor"` },
    })
    assert.equal(cached.status, 304)
    const part = await fetch(`${url}/ipfs/${a.cid}`, { headers: { Range: 'bytes=1-3' } })
    assert.equal(part.status, 206)
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), Buffer.from(a.bytes.subarray(1, 4)))
    const j = docs.j as CarBlock
    const json = await fetch(`${url}/ipfs/${j.cid}?filename=doc.json`)
    assert.equal(json.headers.get('content-type'), 'application/vnd.ipld.dag-json')
    assert.equal(json.headers.get('content-disposition'), 'inline; filename="doc.json"')
    assert.deepEqual(Buffer.from(await json.arrayBuffer()), Buffer.from(j.bytes))
    const plain = await fetch(`${url}/ipfs/${j.cid}?format=json&download=true`)
    assert.equal(plain.headers.get('content-type'), 'application/json')
    assert.equal(plain.headers.get('etag'), `"${j.cid}.json"`)
    assert.match(plain.headers.get('content-disposition') ?? '', /^attachment; filename=/)
    const head = await fetch(`${url}/ipfs/${j.cid}`, { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('content-length'), String(j.bytes.byteLength))
  })

  it('refuses codec conversions with 406 (IPIP-524), and TAR of a document', async () => {
    const cases: Array<[string, string, Record<string, string>]> = [
      [String(docs.a?.cid), '?format=dag-json', {}],
      [String(docs.j?.cid), '?format=dag-cbor', {}],
      [String(docs.j?.cid), '?format=cbor', {}],
      [String(docs.a?.cid), '?format=json', {}],
      [file, '?format=dag-json', {}],
      [file, '', { Accept: 'application/vnd.ipld.dag-cbor' }],
      [String(docs.a?.cid), '?format=tar', {}],
    ]
    for (const [cid, query, headers] of cases) {
      const res = await fetch(`${url}/ipfs/${cid}${query}`, { headers })
      assert.equal(res.status, 406, `${cid}${query}`)
      assert.match(
        await res.text(),
        /codec conversion is not supported|TAR is for UnixFS|format=tar is for UnixFS/,
      )
    }
  })

  it('walks paths through documents: links followed, 404 for a missing field, 501 inside a document', async () => {
    const a = String(docs.a?.cid)
    const c = docs.c as CarBlock
    const res = await fetch(`${url}/ipfs/${a}/foo/link/bar`)
    assert.equal(res.status, 200)
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), Buffer.from(c.bytes))
    assert.equal(res.headers.get('x-ipfs-roots'), [a, docs.b?.cid, c.cid].join(','))
    // A link from a document to UnixFS: the file is served as a file.
    const f = await fetch(`${url}/ipfs/${a}/file`)
    assert.equal(f.status, 200)
    assert.deepEqual(Buffer.from(await f.arrayBuffer()), fileBytes)
    const missing = await fetch(`${url}/ipfs/${a}/foo/nope`)
    assert.equal(missing.status, 404)
    const inside = await fetch(`${url}/ipfs/${a}/foo?format=dag-cbor`)
    assert.equal(inside.status, 501)
    assert.match(await inside.text(), /reading IPLD values other than links is not implemented/)
  })

  it('shows a dag-cbor document as HTML to a browser, after a redirect to the trailing slash', async () => {
    const a = String(docs.a?.cid)
    const redirect = await fetch(`${url}/ipfs/${a}`, { headers: { Accept: 'text/html' }, redirect: 'manual' })
    assert.equal(redirect.status, 301)
    assert.equal(redirect.headers.get('location'), `/ipfs/${a}/`)
    const res = await fetch(`${url}/ipfs/${a}/`, { headers: { Accept: 'text/html,*/*;q=0.8' } })
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/)
    assert.match(res.headers.get('etag') ?? '', /^"DagIndex-/)
    assert.equal(res.headers.get('content-disposition'), null)
    const html = await res.text()
    assert.match(html, /<\/html>/)
    assert.ok(html.includes(`href="/ipfs/${docs.b?.cid}/"`), 'links are clickable')
    const download = await fetch(`${url}/ipfs/${a}/?download=true`, { headers: { Accept: 'text/html' } })
    assert.equal(download.headers.get('content-type'), 'application/vnd.ipld.dag-cbor')
  })

  it('streams a directory tree as TAR (?format=tar and Accept), names and bytes as added', async () => {
    const hashes = await addTree(url)
    const root = hashes.get('site') as string
    for (const headers of [{}, { Accept: 'application/x-tar' }]) {
      const query = 'Accept' in headers ? '' : '?format=tar'
      const res = await fetch(`${url}/ipfs/${root}${query}`, { headers })
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('content-type'), 'application/x-tar')
      assert.equal(res.headers.get('etag'), `W/"${root}.x-tar"`)
      assert.equal(res.headers.get('content-disposition'), `attachment; filename="${root}.tar"`)
      const { dir, files } = await extract(Buffer.from(await res.arrayBuffer()))
      assert.deepEqual(files, expectedTree(root))
      await rm(dir, { recursive: true, force: true })
    }
    // A path inside the tree: the archive is named by the CID at its end.
    const sub = hashes.get('site/sub dir') as string
    const res = await fetch(
      `${url}/ipfs/${root}/sub%20dir?format=tar&filename=${encodeURIComponent('ünï.tar')}`,
    )
    assert.equal(
      res.headers.get('content-disposition'),
      `attachment; filename="_n_.tar"; filename*=UTF-8''%C3%BCn%C3%AF.tar`,
    )
    const { dir, files } = await extract(Buffer.from(await res.arrayBuffer()))
    assert.deepEqual([...files.keys()].sort(), [sub, `${sub}/empty.txt`, `${sub}/żółw ünï.txt`].sort())
    await rm(dir, { recursive: true, force: true })
    const cached = await fetch(`${url}/ipfs/${root}?format=tar`, {
      headers: { 'If-None-Match': `W/"${root}.x-tar"` },
    })
    assert.equal(cached.status, 304)
  })

  it('refuses a TAR of a DAG whose link names leave the root, with the reason', async () => {
    const leaf = await rawBlock(Buffer.from('escaped\n'))
    const node = dagPb.encode(
      dagPb.prepare({ Data: new Uint8Array([8, 1]), Links: [{ Hash: leaf.cid, Name: '../evil', Tsize: 8 }] }),
    )
    const dir = { cid: CID.createV1(dagPb.code, await sha256Hasher.digest(node)), bytes: node }
    const form = new FormData()
    form.append('file', new Blob([await writeCar([dir.cid], [dir, leaf])]), 'x.car')
    assert.equal((await fetch(`${url}/api/v0/dag/import`, { method: 'POST', body: form })).status, 200)
    const res = await fetch(`${url}/ipfs/${dir.cid}?format=tar`)
    assert.equal(res.status, 400)
    assert.match(await res.text(), /lies outside the root .*fetch this DAG as a CAR/)
  })

  it('RPC get: a TAR named after the path, gzip with compress, Kubo client options, clear refusals', async () => {
    const hashes = await addTree(url)
    const root = hashes.get('site') as string
    const get = async (query: string) => requestWithTrailers(`${url}/api/v0/get${query}`)
    const plain = await get(`?arg=${root}`)
    assert.equal(plain.status, 200)
    assert.equal(plain.headers['content-type'], 'application/x-tar')
    assert.equal(plain.headers.trailer, 'X-Stream-Error')
    assert.equal(plain.trailers['x-stream-error'], undefined)
    let out = await extract(plain.body)
    assert.deepEqual(out.files, expectedTree(root))
    await rm(out.dir, { recursive: true, force: true })
    // Named after the last path element, as `ipfs get /ipfs/CID/sub dir` saves it.
    const sub = await get(`?arg=${encodeURIComponent(`/ipfs/${root}/sub dir`)}&archive=true&output=x`)
    out = await extract(sub.body)
    assert.ok(out.files.has('sub dir/żółw ünï.txt'))
    await rm(out.dir, { recursive: true, force: true })
    const gz = await get(`?arg=${root}&archive=true&compress=true&compression-level=9`)
    assert.equal(gz.headers['content-type'], 'application/gzip')
    out = await extract(gunzipSync(gz.body))
    assert.deepEqual(out.files, expectedTree(root))
    await rm(out.dir, { recursive: true, force: true })
    const big = TREE.find((e) => e.path === 'site/big.bin')?.bytes as Uint8Array
    const oneFile = await get(`?arg=${hashes.get('site/big.bin')}&compress=true`)
    assert.deepEqual(gunzipSync(oneFile.body), Buffer.from(big))
    assert.equal(oneFile.headers['x-content-length'], String(big.byteLength))
    // The real kubo-rpc-client: get yields the TAR bytes; its compressionLevel is accepted.
    const client = create({ url: `${url}/api/v0` })
    const chunks: Uint8Array[] = []
    for await (const c of client.get(CID.parse(root), { archive: true, compress: true, compressionLevel: 1 }))
      chunks.push(c)
    out = await extract(gunzipSync(Buffer.concat(chunks)))
    assert.deepEqual(out.files, expectedTree(root))
    await rm(out.dir, { recursive: true, force: true })
    for (const [query, message] of [
      [`?arg=${root}&compress=true`, /compress without archive gzips one file; add archive=true/],
      [`?arg=${root}&compress=true&compression-level=12`, /compression level must be between 1 and 9/],
      [`?arg=${root}&compression-level=3`, /compression-level needs compress=true/],
      [`?arg=${root}&recursive=true`, /unknown option "recursive"/],
      ['', /argument "arg" is required/],
    ] as const) {
      const res = await fetch(`${url}/api/v0/get${query}`, { method: 'POST' })
      assert.equal(res.status, 400, query)
      assert.match(((await res.json()) as { Message: string }).Message, message)
    }
  })

  it('cat: a block missing mid-file ends the body with the X-Stream-Error trailer, as Kubo does', async () => {
    // 24 chunks that exist, then one that was never stored.
    const present = await Promise.all(
      Array.from({ length: 24 }, (_, i) => rawBlock(deterministicBytes(4096, `cat-chunk-${i}`))),
    )
    const absent = CID.createV1(0x55, await sha256Hasher.digest(Buffer.from('never stored chunk')))
    const { UnixFS } = await import('ipfs-unixfs')
    const meta = new UnixFS({ type: 'file', blockSizes: [...present.map(() => 4096n), 4096n] })
    const node = dagPb.encode(
      dagPb.prepare({
        Data: meta.marshal(),
        Links: [...present.map((b) => ({ Hash: b.cid, Tsize: 4096 })), { Hash: absent, Tsize: 4096 }],
      }),
    )
    const root = { cid: CID.createV1(dagPb.code, await sha256Hasher.digest(node)), bytes: node }
    const form = new FormData()
    form.append('file', new Blob([await writeCar([root.cid], [root, ...present])]), 'x.car')
    assert.equal((await fetch(`${url}/api/v0/dag/import`, { method: 'POST', body: form })).status, 200)
    const res = await requestWithTrailers(`${url}/api/v0/cat?arg=${root.cid}`)
    assert.equal(res.status, 200)
    assert.equal(res.headers['x-content-length'], String(25 * 4096))
    assert.equal(res.headers['content-length'], undefined)
    assert.equal(res.complete, true)
    assert.ok(res.body.byteLength < 25 * 4096)
    assert.match(res.trailers['x-stream-error'] ?? '', /not found/)
    // The path gateway cuts the connection instead (Kubo's gateway does the same).
    const gw = await fetch(`${url}/ipfs/${root.cid}`)
    await assert.rejects(gw.arrayBuffer(), /terminated/)
  })

  it('repo/stat sums the storage nodes in Kubo shape, with size-only', async () => {
    const status = (await (await fetch(`${url}/mycel/v1/status`)).json()) as {
      nodes: Array<{ blocks: number; blockBytes: number }>
    }
    const res = await fetch(`${url}/api/v0/repo/stat`, { method: 'POST' })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('x-mycel-nodes-reporting'), '3/3')
    const stat = (await res.json()) as Record<string, unknown>
    assert.deepEqual(Object.keys(stat), ['RepoSize', 'StorageMax', 'NumObjects', 'RepoPath', 'Version'])
    assert.equal(
      stat.RepoSize,
      status.nodes.reduce((n, s) => n + s.blockBytes, 0),
    )
    assert.equal(
      stat.NumObjects,
      status.nodes.reduce((n, s) => n + s.blocks, 0),
    )
    assert.ok((stat.NumObjects as number) > 0)
    const sizeOnly = (await (
      await fetch(`${url}/api/v0/repo/stat?size-only=true&human=true`, { method: 'POST' })
    ).json()) as Record<string, unknown>
    assert.equal(sizeOnly.NumObjects, 0)
    assert.equal(sizeOnly.RepoPath, '')
    const client = create({ url: `${url}/api/v0` })
    const viaClient = await client.repo.stat()
    assert.equal(viaClient.storageMax, 18446744073709551615n + 1n) // JSON number rounding in the client
    assert.ok(viaClient.repoSize > 0n)
    const bad = await fetch(`${url}/api/v0/repo/stat?size-only=maybe`, { method: 'POST' })
    assert.equal(bad.status, 400)
  })
})
