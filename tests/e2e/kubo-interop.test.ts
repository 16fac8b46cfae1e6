import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import { parseAndVerifyCar } from '../helpers/car.js'
import { startCluster, TEST_TMP, type TestCluster } from '../helpers/cluster.js'
import { deterministicBytes } from '../helpers/data.js'
import { type KuboDaemon, startKubo } from '../helpers/kubo.js'

interface Entry {
  path: string
  /** Absent: an empty directory. */
  bytes?: Uint8Array
}

type AddLines = Map<string, { Hash: string; Size: string }>

/** The same multipart body Kubo's clients send: URL-encoded paths, directories as x-directory parts. */
function form(entries: Entry[]): FormData {
  const f = new FormData()
  for (const e of entries) {
    if (e.bytes === undefined) {
      f.append('file', new Blob([], { type: 'application/x-directory' }), encodeURIComponent(e.path))
    } else f.append('file', new Blob([e.bytes]), encodeURIComponent(e.path))
  }
  return f
}

async function add(apiUrl: string, entries: Entry[], query: string): Promise<AddLines> {
  const res = await fetch(`${apiUrl}/api/v0/add${query}`, { method: 'POST', body: form(entries) })
  const text = await res.text()
  assert.equal(res.status, 200, `${apiUrl} add${query}: ${text}`)
  const out: AddLines = new Map()
  for (const line of text.trim().split('\n')) {
    const l = JSON.parse(line) as { Name: string; Hash: string; Size: string }
    out.set(l.Name, { Hash: l.Hash, Size: l.Size })
  }
  return out
}

async function rpc(apiUrl: string, command: string, body?: Uint8Array): Promise<Buffer> {
  let payload: FormData | undefined
  if (body !== undefined) {
    payload = new FormData()
    payload.append('file', new Blob([body]), 'data')
  }
  const res = await fetch(`${apiUrl}/api/v0/${command}`, { method: 'POST', body: payload })
  const bytes = Buffer.from(await res.arrayBuffer())
  assert.equal(res.status, 200, `${apiUrl} ${command}: ${bytes.toString().slice(0, 500)}`)
  return bytes
}

function jsonLines(bytes: Buffer): Array<Record<string, unknown>> {
  return bytes
    .toString()
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

/** dag/import answer: the roots it pinned (with any pin error) and its block count. */
function importReport(bytes: Buffer): { roots: Map<string, string>; blocks: number } {
  const roots = new Map<string, string>()
  let blocks = -1
  for (const l of jsonLines(bytes)) {
    const root = l.Root as { Cid: { '/': string }; PinErrorMsg: string } | undefined
    if (root) roots.set(root.Cid['/'], root.PinErrorMsg)
    const stats = l.Stats as { BlockCount: number } | undefined
    if (stats) blocks = stats.BlockCount
  }
  return { roots, blocks }
}

async function blockSet(car: Uint8Array): Promise<{ roots: string[]; keys: string[] }> {
  const { roots, blocks } = await parseAndVerifyCar(car)
  // Blocks are stored by multihash: a CIDv0 and its CIDv1 twin are the same block.
  const keys = [...new Set(blocks.map((b) => Buffer.from(b.cid.multihash.bytes).toString('hex')))].sort()
  return { roots: roots.map(String), keys }
}

const TREE: Entry[] = [
  { path: 't/a.txt', bytes: Buffer.from('hello from both\n') },
  { path: 't/nested/deeper/x.bin', bytes: deterministicBytes(600_000, 'interop-x') },
  { path: 't/spaces in name/ünïcödé — ✓.txt', bytes: Buffer.from('unicode\n') },
  { path: 't/spaces in name/日本語.md', bytes: deterministicBytes(3000, 'interop-jp') },
  { path: 't/empty.txt', bytes: new Uint8Array() },
  { path: 't/empty-dir' },
  { path: 't/nested/empty-sub' },
]

/** `count` files whose links add up to `linkBytes` in Kubo's HAMT estimate (name bytes + CID bytes). */
function flatDirectory(count: number, linkBytes: number, dir: string): Entry[] {
  const cidBytes = 36 // CIDv1, raw, sha2-256
  const per = Math.floor(linkBytes / count)
  let extra = linkBytes - per * count
  return Array.from({ length: count }, (_, i) => {
    const stem = `f${String(i).padStart(5, '0')}-`
    const len = per - cidBytes + (extra-- > 0 ? 1 : 0)
    return { path: `${dir}/${stem.padEnd(len, 'x')}`, bytes: Buffer.from(`file ${i} of ${dir}\n`) }
  })
}

/**
 * Interop with the real Kubo 0.43.1, offline on loopback: the same trees added to both give the
 * same CIDs (and sizes), CARs move both ways with every block, and Kubo verifies Mycel's
 * trustless responses by importing them.
 */
describe('Kubo 0.43.1 interop: add parity, CAR exchange both ways, trustless responses', () => {
  let cluster: TestCluster
  let kubo: KuboDaemon
  let work: string
  let mycel: string
  before(async () => {
    work = await mkdtemp(join(TEST_TMP, 'kubo-interop-'))
    ;[cluster, kubo] = await Promise.all([startCluster({ nodes: 3 }), startKubo(work)])
    mycel = cluster.gatewayUrl
  })
  after(async () => {
    await Promise.all([cluster?.destroy(), kubo?.stop()])
    if (work) await rm(work, { recursive: true, force: true })
  })

  it('the same trees get the same CIDs and sizes: cid-version 0 and 1, raw-leaves on and off, wrap-with-directory', async () => {
    const single: Entry[] = [
      { path: 'single file.txt', bytes: deterministicBytes(270_000, 'interop-single') },
    ]
    for (const [entries, query] of [
      [TREE, '?cid-version=1'],
      [TREE, '?cid-version=0'],
      [TREE, '?cid-version=1&raw-leaves=false'],
      [TREE, '?cid-version=0&raw-leaves=true'],
      [TREE, '?cid-version=1&wrap-with-directory=true'],
      [single, '?cid-version=1&wrap-with-directory=true'],
      [single, '?cid-version=0&wrap-with-directory=true'],
    ] as const) {
      const [m, k] = await Promise.all([add(mycel, entries, query), add(kubo.apiUrl, entries, query)])
      assert.deepEqual(new Map([...m].sort()), new Map([...k].sort()), query)
    }
    // silent: Kubo still answers its directory lines (only file events are muted); quiet changes nothing.
    for (const query of ['?cid-version=1&silent=true', '?cid-version=1&quiet=true']) {
      const [m, k] = await Promise.all([add(mycel, TREE, query), add(kubo.apiUrl, TREE, query)])
      assert.deepEqual(new Map([...m].sort()), new Map([...k].sort()), query)
    }
  })

  it('a directory of many files stays flat up to the 256 KiB HAMT threshold and shards above it, as in Kubo', async () => {
    const threshold = 256 * 1024
    for (const [name, linkBytes, sharded] of [
      ['at-threshold', threshold, false],
      ['over-threshold', threshold + 1, true],
    ] as const) {
      const entries = flatDirectory(2048, linkBytes, name)
      const [m, k] = await Promise.all([
        add(mycel, entries, '?cid-version=1'),
        add(kubo.apiUrl, entries, '?cid-version=1'),
      ])
      const root = m.get(name)
      assert.deepEqual(root, k.get(name), name)
      const node = dagPb.decode(await rpc(mycel, `block/get?arg=${root?.Hash}`))
      const type = UnixFS.unmarshal(node.Data as Uint8Array).type
      assert.equal(type, sharded ? 'hamt-sharded-directory' : 'directory', name)
      // Mycel serves a file from the sharded directory by name.
      const file = entries[1234] as Entry
      const got = await fetch(
        `${mycel}/ipfs/${root?.Hash}/${encodeURIComponent(file.path.split('/')[1] as string)}`,
      )
      assert.deepEqual(Buffer.from(await got.arrayBuffer()), Buffer.from(file.bytes as Uint8Array))
    }
  })

  it('a CAR exported by Mycel (dag/export and ?format=car) imports into Kubo with the same root and every block', async () => {
    const entries: Entry[] = [
      { path: 'm/big.bin', bytes: deterministicBytes(1_100_000, 'mycel-only-big') },
      { path: 'm/sub/small.txt', bytes: Buffer.from('only in mycel\n') },
    ]
    const added = await add(mycel, entries, '?cid-version=1')
    const root = added.get('m')?.Hash as string
    const trustless = await add(
      mycel,
      [{ path: 'n/x.bin', bytes: deterministicBytes(700_000, 'mycel-only-x') }],
      '',
    )
    const root2 = trustless.get('n')?.Hash as string
    for (const [label, car, expectRoot] of [
      ['dag/export', await rpc(mycel, `dag/export?arg=${root}`), root],
      [
        '?format=car',
        Buffer.from(await (await fetch(`${mycel}/ipfs/${root2}?format=car`)).arrayBuffer()),
        root2,
      ],
    ] as const) {
      const mine = await blockSet(car)
      assert.deepEqual(mine.roots, [expectRoot], label)
      // Kubo pins the root only if the whole DAG is there, so an empty PinErrorMsg proves every block arrived.
      const report = importReport(await rpc(kubo.apiUrl, 'dag/import?pin-roots=true&stats=true', car))
      assert.deepEqual([...report.roots], [[expectRoot, '']], label)
      assert.equal(report.blocks, mine.keys.length, label)
      const back = await blockSet(await rpc(kubo.apiUrl, `dag/export?arg=${expectRoot}`))
      assert.deepEqual(back.keys, mine.keys, label)
    }
    const cat = await kubo.ipfs(['cat', '--offline', `/ipfs/${root}/big.bin`])
    assert.deepEqual(cat, Buffer.from(entries[0]?.bytes as Uint8Array))
  })

  it('a CAR exported by Kubo imports into Mycel and reads back identical, for CIDv1 and CIDv0 DAGs', async () => {
    const entries: Entry[] = [
      { path: 'k/movie.bin', bytes: deterministicBytes(900_000, 'kubo-only-movie') },
      { path: 'k/docs/readme — ✓.txt', bytes: Buffer.from('only in kubo\n') },
      { path: 'k/docs/empty' },
    ]
    for (const query of ['?cid-version=1', '']) {
      const added = await add(kubo.apiUrl, entries, query)
      const root = added.get('k')?.Hash as string
      const car = await rpc(kubo.apiUrl, `dag/export?arg=${root}`)
      const theirs = await blockSet(car)
      const report = importReport(await rpc(mycel, 'dag/import?stats=true', car))
      assert.deepEqual([...report.roots], [[root, '']], query)
      assert.equal(report.blocks, theirs.keys.length)
      for (const e of entries) {
        if (e.bytes === undefined) continue
        const rel = e.path.split('/').slice(1).map(encodeURIComponent).join('/')
        const res = await fetch(`${mycel}/ipfs/${root}/${rel}`)
        assert.equal(res.status, 200, `${query} ${e.path}`)
        assert.deepEqual(Buffer.from(await res.arrayBuffer()), Buffer.from(e.bytes), `${query} ${e.path}`)
      }
      const again = await blockSet(await rpc(mycel, `dag/export?arg=${root}`))
      assert.deepEqual(again, theirs, query)
    }
  })

  it('Kubo verifies trustless responses fetched from Mycel: a raw block and a CAR of a path', async () => {
    const entries: Entry[] = [
      { path: 'v/deep/file.bin', bytes: deterministicBytes(800_000, 'verify-me') },
      { path: 'v/other.bin', bytes: deterministicBytes(500_000, 'not-fetched') },
    ]
    const added = await add(mycel, entries, '?cid-version=1')
    const root = added.get('v')?.Hash as string
    // A raw block: Kubo hashes it on block put and must arrive at the same CID.
    const dir = added.get('v/deep')?.Hash as string
    const raw = Buffer.from(await (await fetch(`${mycel}/ipfs/${dir}?format=raw`)).arrayBuffer())
    const put = JSON.parse((await rpc(kubo.apiUrl, 'block/put?cid-codec=dag-pb', raw)).toString()) as {
      Key: string
    }
    assert.equal(put.Key, dir)
    // A CAR of a path: the blocks proving /v/deep/file.bin, then the file. Kubo imports it (and
    // checks every hash) and can then read the file offline, though it has nothing else of the DAG.
    const car = Buffer.from(
      await (await fetch(`${mycel}/ipfs/${root}/deep/file.bin?format=car`)).arrayBuffer(),
    )
    const report = importReport(await rpc(kubo.apiUrl, 'dag/import?pin-roots=false&stats=true', car))
    assert.ok(report.blocks > 3)
    const cat = await kubo.ipfs(['cat', '--offline', `/ipfs/${root}/deep/file.bin`])
    assert.deepEqual(cat, Buffer.from(entries[0]?.bytes as Uint8Array))
    await assert.rejects(kubo.ipfs(['cat', '--offline', `/ipfs/${root}/other.bin`]))
  })

  it('the Kubo CLI works against Mycel as its RPC API: cat, get, dag export', async () => {
    const entries: Entry[] = [
      { path: 'c/one.txt', bytes: Buffer.from('through the kubo cli\n') },
      { path: 'c/sub/two.bin', bytes: deterministicBytes(300_000, 'cli-two') },
    ]
    const added = await add(mycel, entries, '?cid-version=1')
    const root = added.get('c')?.Hash as string
    const api = `/ip4/127.0.0.1/tcp/${new URL(mycel).port}`
    const cat = await kubo.ipfs(['--api', api, 'cat', `/ipfs/${root}/sub/two.bin`])
    assert.deepEqual(cat, Buffer.from(entries[1]?.bytes as Uint8Array))
    const out = join(work, 'cli-get')
    await kubo.ipfs(['--api', api, 'get', '-o', out, root])
    const { readFile } = await import('node:fs/promises')
    assert.deepEqual(await readFile(join(out, 'one.txt')), Buffer.from(entries[0]?.bytes as Uint8Array))
    assert.deepEqual(
      await readFile(join(out, 'sub', 'two.bin')),
      Buffer.from(entries[1]?.bytes as Uint8Array),
    )
    const car = await kubo.ipfs(['--api', api, 'dag', 'export', root])
    const set = await blockSet(car)
    assert.deepEqual(set.roots, [root])
    assert.equal(CID.parse(root).toString(), root)
  })
})
