import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { status } from '@grpc/grpc-js'
import type { ApiServiceClient } from '@mycel/proto'
import { MycelClient } from '@mycel/sdk'
import { apiClient, data, failure, options, rawAdd } from '../helpers/api.js'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { blockClient, rawBlock } from '../helpers/grpc.js'
import { allAlive } from '../helpers/membership.js'

const MAX_UPLOAD = 8 * 1024 * 1024

/** Every error of the public API, over the wire: its gRPC status and its Mycel code. */
describe('public gRPC API error codes (3 nodes)', () => {
  let cluster: TestCluster
  let raw: ApiServiceClient
  let sdk: MycelClient
  let file: { cid: string; size: number }
  let dir: string
  before(async () => {
    cluster = await startCluster({
      nodes: 3,
      nodeEnv: () => ({ MYCEL_MAX_UPLOAD_BYTES: String(MAX_UPLOAD) }),
    })
    // Errors that name the cluster's size need every node to see the others alive.
    await allAlive(cluster)
    raw = apiClient(cluster.nodeAddress(0))
    sdk = new MycelClient({ nodes: [cluster.nodeAddress(0)] })
    const bytes = randomBytes(1024 * 1024 + 10)
    file = { cid: (await sdk.add(bytes)).cid, size: bytes.byteLength }
    dir = (await sdk.addEntries(() => [{ path: 'd/x.txt', content: Buffer.from('x') }])).cid
  })
  after(async () => {
    raw?.close()
    sdk?.close()
    await cluster?.destroy()
  })

  const invalid = <T extends { code: number }>(r: T): T => {
    assert.equal(r.code, status.INVALID_ARGUMENT)
    return r
  }

  it('INVALID_ARGUMENT: a bad CID, with the Mycel code INVALID_CID', async () => {
    const r = invalid(await failure(sdk.stat('not-a-cid')))
    assert.equal(r.mycel, 'INVALID_CID')
    assert.match(r.details, /invalid CID "not-a-cid"/)
  })

  it('INVALID_ARGUMENT: Add whose first message is not the options', async () => {
    const r = invalid(await failure(rawAdd(raw, [data(Buffer.from('abc'))])))
    assert.match(r.details, /first message must carry the options/)
  })

  it('INVALID_ARGUMENT: ec:K+M wider than the cluster, out-of-range codes and unknown policies', async () => {
    const ec = invalid(await failure(sdk.add(Buffer.from('x'), { durability: 'ec:4+2' })))
    assert.match(ec.details, /ec:4\+2 needs 6 storage nodes \(one per shard\); the cluster has 3/)
    assert.match(
      invalid(await failure(sdk.add(Buffer.from('x'), { durability: 'ec:1+7' }))).details,
      /1 <= M <= 6 parity shards/,
    )
    invalid(await failure(sdk.add(Buffer.from('x'), { durability: 'replicate:9' })))
    invalid(await failure(sdk.pin(file.cid, { durability: 'mirror' })))
  })

  it('INVALID_ARGUMENT: unsupported chunker, chunks over 1 MiB, entries outside directory mode', async () => {
    assert.match(
      invalid(await failure(sdk.add(Buffer.from('x'), { chunker: 'rabin' }))).details,
      /chunker "rabin"/,
    )
    assert.match(
      invalid(await failure(sdk.add(Buffer.from('x'), { chunker: 'size-2000000' }))).details,
      /chunk size must be between 1 and 1048576/,
    )
    // CIDv0 with raw leaves is accepted, as Kubo accepts it (the leaves are CIDv1 raw).
    assert.ok((await sdk.add(Buffer.from('x'), { cidVersion: 0, rawLeaves: true })).cid)
    const entryInFileMode = await failure(
      rawAdd(raw, [options(), { message: { $case: 'entry', value: { path: 'a', type: 1 } } }]),
    )
    invalid(entryInFileMode)
  })

  it('INVALID_ARGUMENT: directory entries with unsafe paths', async () => {
    for (const path of ['../etc/passwd', '/abs', 'a//b', 'a/./b', '']) {
      const r = invalid(await failure(sdk.addEntries(() => [{ path, content: Buffer.from('x') }])))
      assert.match(r.details, /must be relative/, path)
    }
  })

  it('NOT_FOUND: unknown content, a missing path, an unpinned CID', async () => {
    const unknown = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
    const r = await failure(sdk.stat(unknown))
    assert.deepEqual([r.code, r.mycel], [status.NOT_FOUND, 'BLOCK_NOT_FOUND'])
    const p = await failure(sdk.stat(`${dir}/nope.txt`))
    assert.deepEqual([p.code, p.mycel], [status.NOT_FOUND, 'PATH_NOT_FOUND'])
    const u = await failure(sdk.unpin(unknown))
    assert.deepEqual([u.code, u.mycel], [status.NOT_FOUND, 'NOT_PINNED'])
    const l = await failure(sdk.listPins({ cids: [unknown] }))
    assert.deepEqual([l.code, l.mycel], [status.NOT_FOUND, 'NOT_PINNED'])
  })

  it('NOT_FOUND: pinning a DAG with a missing block names the block', async () => {
    const bytes = randomBytes(4 * 262_144)
    const added = await sdk.add(bytes, { pin: false })
    // The second leaf disappears from every node (DeleteBlock is the internal API).
    const leaf = rawBlock(bytes.subarray(262_144, 2 * 262_144)).cid
    for (let i = 0; i < 3; i++) {
      const c = blockClient(cluster.nodeAddress(i))
      await new Promise((resolve, reject) =>
        c.deleteBlock({ cid: Buffer.from(leaf.bytes) }, (err, res) => (err ? reject(err) : resolve(res))),
      )
      c.close()
    }
    const r = await failure(sdk.pin(added.cid))
    assert.deepEqual([r.code, r.mycel], [status.NOT_FOUND, 'BLOCK_NOT_FOUND'])
    assert.match(r.details, new RegExp(`block ${leaf.toString()} not found in the DAG of ${added.cid}`))
    assert.deepEqual(
      await sdk.listPins({ cids: [] }).then((ps) => ps.some((p) => p.cid === added.cid)),
      false,
    )
  })

  it('FAILED_PRECONDITION: Cat of a directory; OUT_OF_RANGE: an offset past the end', async () => {
    const d = await failure(collect(sdk.cat(dir)))
    assert.deepEqual([d.code, d.mycel], [status.FAILED_PRECONDITION, 'NOT_A_FILE'])
    const o = await failure(collect(sdk.cat(file.cid, { offset: file.size + 1 })))
    assert.deepEqual([o.code, o.mycel], [status.OUT_OF_RANGE, 'RANGE_NOT_SATISFIABLE'])
    // At the very end is not an error: an empty read (how a resumed read ends).
    assert.equal((await collect(sdk.cat(file.cid, { offset: file.size }))).byteLength, 0)
  })

  it('RESOURCE_EXHAUSTED: a message over 4 MiB, and an upload over MYCEL_MAX_UPLOAD_BYTES', async () => {
    const big = await failure(rawAdd(raw, [options(), data(randomBytes(5 * 1024 * 1024))]))
    assert.equal(big.code, status.RESOURCE_EXHAUSTED)
    const over = await failure(sdk.add(randomBytes(MAX_UPLOAD + 1)))
    assert.deepEqual([over.code, over.mycel], [status.RESOURCE_EXHAUSTED, 'PAYLOAD_TOO_LARGE'])
    assert.match(over.details, new RegExp(`limit of ${MAX_UPLOAD} bytes`))
  })

  it('DEADLINE_EXCEEDED: the client deadline passes while an Add is open', async () => {
    const r = await failure(
      rawAdd(raw, [options(), data(Buffer.from('never ends'))], { deadlineMs: 300, end: false }),
    )
    assert.equal(r.code, status.DEADLINE_EXCEEDED)
    // The node is fine afterwards.
    assert.equal((await sdk.stat(file.cid)).size, file.size)
  })

  it('UNAVAILABLE: writes and pins without a quorum (two of three nodes down)', async () => {
    await cluster.nodes[1]!.kill()
    await cluster.nodes[2]!.kill()
    const add = await failure(sdk.add(randomBytes(1000)))
    assert.deepEqual([add.code, add.mycel], [status.UNAVAILABLE, 'QUORUM_NOT_REACHED'])
    assert.match(add.details, /write quorum not reached: needed 2, acknowledged by [01]/)
    const pin = await failure(sdk.pin(file.cid))
    assert.equal(pin.code, status.UNAVAILABLE)
    // A client that knows only dead nodes fails fast with UNAVAILABLE too.
    const dead = new MycelClient({
      nodes: [cluster.nodeAddress(1), cluster.nodeAddress(2)],
      connectTimeoutMs: 1_000,
    })
    try {
      const r = await failure(dead.stat(file.cid))
      assert.deepEqual([r.code, r.mycel], [status.UNAVAILABLE, 'UPSTREAM_UNAVAILABLE'])
      assert.match(r.details, /no Mycel node could be reached/)
    } finally {
      dead.close()
    }
  })
})

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const c of source) chunks.push(c)
  return Buffer.concat(chunks)
}
