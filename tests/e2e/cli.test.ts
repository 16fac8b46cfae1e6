import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parseTokenFile } from '@mycel/core'
import { create } from 'kubo-rpc-client'
import { startCluster, TEST_TMP, type TestCluster } from '../helpers/cluster.js'

const CLI = join(process.cwd(), 'services/cli/dist/bin.js')

interface Run {
  status: number | null
  stdout: string
  stderr: string
  out: Buffer
}

/** The `mycel` CLI end to end: outputs, files on disk and exit codes against a real cluster. */
describe('mycel CLI (3 nodes and a gateway)', () => {
  let cluster: TestCluster
  let dir: string
  let tree: string
  let treeCid: string
  const mycel = (args: string[], env: Record<string, string> = {}): Run => {
    const r = spawnSync(process.execPath, [CLI, ...args], {
      env: { ...process.env, MYCEL_NODES: `${cluster.nodeAddress(0)},${cluster.nodeAddress(1)}`, ...env },
      maxBuffer: 64 * 1024 * 1024,
    })
    return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString(), out: r.stdout }
  }
  const json = <T>(args: string[]): T => {
    const r = mycel([...args, '--json'])
    assert.equal(r.status, 0, r.stderr)
    return JSON.parse(r.stdout) as T
  }

  before(async () => {
    cluster = await startCluster({ nodes: 3 })
    dir = await mkdtemp(join(TEST_TMP, 'cli-'))
    tree = join(dir, 'photos')
    await mkdir(join(tree, '2024', 'summer'), { recursive: true })
    await mkdir(join(tree, 'empty'))
    await writeFile(join(tree, 'readme.txt'), 'holiday pictures\n')
    await writeFile(join(tree, '2024', 'summer', 'beach.raw'), randomBytes(1_300_000))
    await writeFile(join(tree, '2024', 'index.md'), '# 2024\n')
    await writeFile(join(tree, '.DS_Store'), 'hidden: not added without --hidden')
  })
  after(async () => {
    await cluster?.destroy()
    await rm(dir, { recursive: true, force: true })
  })

  it('put DIR adds the tree as `ipfs add -r` does: the same CIDs as Kubo’s client over HTTP', async () => {
    const r = mycel(['put', tree])
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stderr, '', 'no progress bar when stderr is not a terminal')
    const lines = r.stdout.trim().split('\n')
    assert.match(lines.at(-1) ?? '', /^1\.2 MiB in 3 files at .*; pinned bafy/)
    const added = lines.slice(0, -1).map((l) => l.split(' '))
    assert.ok(added.every(([word]) => word === 'added'))
    treeCid = added.find(([, , path]) => path === 'photos')?.[1] ?? ''
    assert.ok(!r.stdout.includes('.DS_Store'))
    // kubo-rpc-client sends the same tree as Kubo's CLI would (directory parts included).
    const kubo = create({ url: `${cluster.gatewayUrl}/api/v0` })
    const files = [
      { path: 'photos' },
      { path: 'photos/2024' },
      { path: 'photos/2024/index.md', content: await readFile(join(tree, '2024', 'index.md')) },
      { path: 'photos/2024/summer' },
      {
        path: 'photos/2024/summer/beach.raw',
        content: await readFile(join(tree, '2024', 'summer', 'beach.raw')),
      },
      { path: 'photos/empty' },
      { path: 'photos/readme.txt', content: await readFile(join(tree, 'readme.txt')) },
    ]
    const viaHttp = new Map<string, string>()
    for await (const e of kubo.addAll(files, { cidVersion: 1 })) viaHttp.set(e.path, e.cid.toString())
    assert.equal(viaHttp.get('photos'), treeCid)
    for (const [, cid, path] of added) assert.equal(viaHttp.get(path as string), cid, path)
  })

  it('put FILE -q prints only the CID; --json the whole result', async () => {
    const file = join(tree, 'readme.txt')
    const q = mycel(['put', '-q', file])
    assert.equal(q.status, 0, q.stderr)
    assert.match(q.stdout, /^bafkrei[a-z2-7]+\n$/)
    const res = json<{ cid: string; size: number; pinned: string[] }>(['put', file, '--no-pin'])
    assert.deepEqual([res.cid, res.size, res.pinned], [q.stdout.trim(), 17, []])
  })

  it('cat writes the bytes; --offset/--length a range', async () => {
    const beach = await readFile(join(tree, '2024', 'summer', 'beach.raw'))
    const r = mycel(['cat', `/ipfs/${treeCid}/2024/summer/beach.raw`])
    assert.equal(r.status, 0, r.stderr)
    assert.ok(r.out.equals(beach))
    const part = mycel(['cat', `${treeCid}/2024/summer/beach.raw`, '--offset', '1000', '--length', '5000'])
    assert.ok(part.out.equals(beach.subarray(1000, 6000)))
  })

  it('get writes a directory tree and a single file; refuses to overwrite without -f', async () => {
    const out = join(dir, 'restored')
    const r = json<{ files: number; bytes: number; type: string }>(['get', treeCid, '-o', out])
    assert.deepEqual([r.type, r.files], ['directory', 3])
    assert.deepEqual(await listTree(out), await listTree(tree, true))
    for (const f of ['readme.txt', '2024/index.md', '2024/summer/beach.raw']) {
      assert.ok((await readFile(join(out, f))).equals(await readFile(join(tree, f))), f)
    }
    assert.ok((await stat(join(out, 'empty'))).isDirectory())
    const again = mycel(['get', treeCid, '-o', out])
    assert.equal(again.status, 1)
    assert.match(again.stderr, /exists; use -f/)
    const single = join(dir, 'one.txt')
    assert.equal(mycel(['get', `${treeCid}/readme.txt`, '-o', single]).status, 0)
    assert.equal(await readFile(single, 'utf8'), 'holiday pictures\n')
  })

  it('stat and ls describe content', () => {
    const s = json<{ type: string; links: number; blocks: number }>(['stat', treeCid, '--blocks'])
    assert.deepEqual([s.type, s.links], ['directory', 3])
    assert.ok(s.blocks >= 9)
    const human = mycel(['stat', treeCid])
    assert.match(human.stdout, /^CID: +bafy.*\nType: +directory\n/)
    const ls = json<Array<{ name: string; type: string }>>(['ls', treeCid])
    assert.deepEqual(
      ls.map((e) => e.name),
      ['2024', 'empty', 'readme.txt'],
    )
  })

  it('pin add|rm|ls with their outputs and exit codes', () => {
    const pins = json<Array<{ cid: string }>>(['pin', 'ls'])
    assert.ok(pins.some((p) => p.cid === treeCid))
    assert.equal(mycel(['pin', 'rm', treeCid]).status, 0)
    const gone = mycel(['pin', 'rm', treeCid])
    assert.equal(gone.status, 2)
    assert.match(gone.stderr, /is not pinned/)
    assert.equal(mycel(['pin', 'ls', treeCid]).status, 2)
    const added = mycel(['pin', 'add', treeCid, '--name', 'photos', '--durability', 'replicate:2'])
    assert.equal(added.status, 0, added.stderr)
    assert.match(added.stdout, /^pinned bafy\S+ \(\d+ blocks checked\)\n$/)
    const listed = mycel(['pin', 'ls', treeCid])
    assert.match(listed.stdout, /replicate:2 +photos/)
    assert.equal(
      mycel(['pin', 'ls', '-q'])
        .stdout.split('\n')
        .filter((l) => l === treeCid).length,
      1,
    )
  })

  it('status prints the cluster health table; --json the same facts', () => {
    const s = json<{
      membersUp: number
      members: Array<{ nodeId: string; reachable: boolean }>
      ready: boolean
    }>(['status'])
    assert.equal(s.membersUp, 3)
    assert.ok(s.ready)
    const human = mycel(['status'])
    assert.equal(human.status, 0)
    assert.match(human.stdout, /^3\/3 members up · replication 3, write quorum 2 · ready/)
    for (const m of s.members)
      assert.match(human.stdout, new RegExp(`${m.nodeId} +127\\.0\\.0\\.1:\\d+ +default +alive +yes`))
  })

  it('exit codes: 1 usage or invalid input, 2 not found, 3 unavailable; --help everywhere', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['cat', 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'], 2, /not found/],
      [['cat', 'not-a-cid'], 1, /invalid CID/],
      [['cat', treeCid], 1, /is a directory/],
      [['put', join(dir, 'missing.txt')], 2, /ENOENT|no such file/],
      [['put', tree, '--durability', 'ec:4+2'], 1, /ec:4\+2 needs 6 storage nodes/],
      [['cat', treeCid, '--offset', '-1'], 1, /--offset/],
      [['put'], 1, /missing required argument/],
      [['frobnicate'], 1, /unknown command/],
      [['--node', '127.0.0.1:1', 'status'], 3, /no Mycel node could be reached/],
    ]
    for (const [args, code, message] of cases) {
      const r = mycel(args)
      assert.equal(r.status, code, `mycel ${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, message, args.join(' '))
    }
    for (const args of [
      ['--help'],
      ['put', '--help'],
      ['pin', 'add', '--help'],
      ['status', '--help'],
      ['local', '--help'],
    ]) {
      const r = mycel(args)
      assert.equal(r.status, 0, args.join(' '))
      assert.match(r.stdout, /^Usage: mycel/)
    }
    assert.equal(mycel([]).status, 1)
  })

  it('token create prints a token and a valid tokens-file line', () => {
    const t = json<{ token: string; line: string }>([
      'token',
      'create',
      '--name',
      'ci',
      '--scopes',
      'read,write',
    ])
    assert.match(t.token, /^mycel_/)
    assert.deepEqual([...(parseTokenFile(t.line)[0]?.scopes ?? [])], ['read', 'write'])
  })
})

async function listTree(root: string, skipHidden = false, prefix = ''): Promise<string[]> {
  const out: string[] = []
  for (const e of (await readdir(join(root, prefix), { withFileTypes: true })).sort((a, b) =>
    a.name < b.name ? -1 : 1,
  )) {
    if (skipHidden && e.name.startsWith('.')) continue
    const rel = prefix === '' ? e.name : `${prefix}/${e.name}`
    out.push(`${rel}${e.isDirectory() ? '/' : ''}`)
    if (e.isDirectory()) out.push(...(await listTree(root, skipHidden, rel)))
  }
  return out
}
