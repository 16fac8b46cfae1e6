import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { status } from '@grpc/grpc-js'
import { MycelClient } from '@mycel/sdk'
import { failure } from '../helpers/api.js'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { deterministicBytes, deterministicChunks, sha256 } from '../helpers/data.js'
import { kuboAdd } from '../helpers/http.js'
import { KUBO_DIR_VECTORS, KUBO_VECTORS } from '../helpers/kubo-vectors.js'
import { eventually } from '../helpers/poll.js'

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const c of source) chunks.push(c)
  return Buffer.concat(chunks)
}

/** @mycel/sdk against a real cluster: round trips, CID interop with HTTP and Kubo, pins. */
describe('SDK round trips (3 nodes and a gateway)', () => {
  let cluster: TestCluster
  let sdk: MycelClient
  before(async () => {
    cluster = await startCluster({ nodes: 3, nodeEnv: () => ({ MYCEL_PIN_SYNC_INTERVAL_MS: '500' }) })
    sdk = new MycelClient({ nodes: [cluster.nodeAddress(0), cluster.nodeAddress(1), cluster.nodeAddress(2)] })
  })
  after(async () => {
    sdk?.close()
    await cluster?.destroy()
  })

  it('adds from a buffer, an async iterable and a Readable; cats whole and in ranges', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 17)
    const fromBuffer = await sdk.add(bytes)
    const fromIterable = await sdk.add(
      (async function* () {
        for (let at = 0; at < bytes.byteLength; at += 100_000) yield bytes.subarray(at, at + 100_000)
      })(),
    )
    const fromReadable = await sdk.add(Readable.from([bytes.subarray(0, 5), bytes.subarray(5)]))
    assert.equal(fromIterable.cid, fromBuffer.cid)
    assert.equal(fromReadable.cid, fromBuffer.cid)
    assert.equal(fromBuffer.size, bytes.byteLength)
    assert.ok((await collect(sdk.cat(fromBuffer.cid))).equals(bytes))
    for (const [offset, length] of [
      [0, 1],
      [262_143, 2],
      [1_000_000, 2_000_000],
      [bytes.byteLength - 10, 100],
    ] as const) {
      const got = await collect(sdk.cat(fromBuffer.cid, { offset, length }))
      assert.ok(got.equals(bytes.subarray(offset, offset + length)), `${offset}+${length}`)
    }
    assert.ok((await collect(sdk.catStream(fromBuffer.cid, { offset: 7 }))).equals(bytes.subarray(7)))
    const empty = await sdk.add(new Uint8Array(0))
    assert.equal((await collect(sdk.cat(empty.cid))).byteLength, 0)
  })

  it('stat and ls describe files and directories', async () => {
    const tree = await sdk.addEntries(() => [
      { path: 'site' },
      { path: 'site/index.html', content: Buffer.from('<h1>hi</h1>') },
      { path: 'site/img/big.bin', content: randomBytes(600_000) },
      { path: 'site/empty' },
    ])
    const root = await sdk.stat(tree.cid, { countBlocks: true })
    assert.equal(root.type, 'directory')
    assert.equal(root.links, 3)
    assert.equal(root.blocks, 8) // root, img, empty, index.html, big.bin's root and 3 leaves
    const big = await sdk.stat(`/ipfs/${tree.cid}/img/big.bin`)
    assert.deepEqual([big.type, big.size, big.links], ['file', 600_000, 3])
    const entries = await sdk.ls(tree.cid)
    assert.deepEqual(
      entries.map((e) => [e.name, e.type]),
      [
        ['empty', 'directory'],
        ['img', 'directory'],
        ['index.html', 'raw'],
      ],
    )
    assert.equal(entries.find((e) => e.name === 'index.html')?.size, 11)
    assert.equal((await collect(sdk.cat(`${tree.cid}/index.html`))).toString(), '<h1>hi</h1>')
  })

  describe('interop: the same content over gRPC and over HTTP gives the same CID', () => {
    for (const v of KUBO_VECTORS.filter((x) => x.size <= 6_000_000)) {
      it(`${v.size} bytes: Kubo's CIDv1 and CIDv0 both ways`, async () => {
        const bytes = deterministicBytes(v.size, v.seed)
        const grpc1 = await sdk.add(bytes, { pin: false })
        const grpc0 = await sdk.add(bytes, { pin: false, cidVersion: 0, rawLeaves: false })
        const http1 = await kuboAdd(cluster.gatewayUrl, [{ name: 'f', bytes }], '?cid-version=1&pin=false')
        const http0 = await kuboAdd(cluster.gatewayUrl, [{ name: 'f', bytes }], '?cid-version=0&pin=false')
        assert.deepEqual([grpc1.cid, grpc0.cid], [v.cidV1, v.cidV0])
        assert.deepEqual([http1.lines.at(-1)?.Hash, http0.lines.at(-1)?.Hash], [v.cidV1, v.cidV0])
        assert.equal(grpc1.dagSize, Number(v.kuboSize))
      })
    }

    it('a nested directory tree, over gRPC (directory mode) and HTTP multipart', async () => {
      const files = [
        { name: 'tree/a.txt', bytes: Buffer.from('alpha\n') },
        { name: 'tree/sub/b.bin', bytes: deterministicBytes(700_000, 'interop/b') },
        { name: 'tree/sub/deeper/c', bytes: Buffer.alloc(0) },
        { name: 'tree/ünïcode name.txt', bytes: Buffer.from('é') },
      ]
      const grpc = await sdk.addEntries(() => files.map((f) => ({ path: f.name, content: f.bytes })))
      const http = await kuboAdd(cluster.gatewayUrl, files, '?cid-version=1')
      const httpRoot = http.lines.find((l) => l.Name === 'tree')?.Hash
      assert.equal(grpc.cid, httpRoot)
      assert.deepEqual(
        grpc.entries.map((e) => [e.path, e.cid]),
        http.lines.map((l) => [l.Name, l.Hash]),
      )
    })

    for (const v of KUBO_DIR_VECTORS) {
      it(`wrapped ${v.files.map((f) => f.name).join(' + ')} gives Kubo's -w CIDs`, async () => {
        const entries = () =>
          v.files.map((f) => ({ path: f.name, content: deterministicBytes(f.size, f.seed) }))
        assert.equal((await sdk.addEntries(entries, { wrapWithDirectory: true })).cid, v.cidV1)
        assert.equal(
          (await sdk.addEntries(entries, { wrapWithDirectory: true, cidVersion: 0, rawLeaves: false })).cid,
          v.cidV0,
        )
      })
    }
  })

  describe('pins', () => {
    it('add pins its root by default, with the durability and name given; pin=false does not', async () => {
      const pinned = await sdk.add(randomBytes(2000), { durability: 'replicate:2', pinName: 'two copies' })
      const unpinned = await sdk.add(randomBytes(2000), { pin: false })
      assert.deepEqual(pinned.pinned, [pinned.cid])
      assert.deepEqual(unpinned.pinned, [])
      const [p] = await sdk.listPins({ cids: [pinned.cid] })
      assert.deepEqual([p?.durability, p?.name], ['replicate:2', 'two copies'])
      assert.equal((await failure(sdk.listPins({ cids: [unpinned.cid] }))).code, status.NOT_FOUND)
    })

    it('pin, unpin and re-pin are seen through every node (majority writes and reads)', async () => {
      const { cid } = await sdk.add(randomBytes(5000), { pin: false })
      const via = (i: number) => new MycelClient({ nodes: [cluster.nodeAddress(i)] })
      const [a, b, c] = [via(0), via(1), via(2)]
      try {
        assert.equal((await a.pin(cid)).blocks, 1)
        assert.ok((await b.listPins()).some((p) => p.cid === cid))
        await c.unpin(cid)
        assert.ok(!(await a.listPins()).some((p) => p.cid === cid))
        assert.equal((await failure(b.unpin(cid))).mycel, 'NOT_PINNED')
        await b.pin(cid, { name: 'again' })
        assert.equal((await c.listPins({ cids: [cid] }))[0]?.name, 'again')
      } finally {
        for (const x of [a, b, c]) x.close()
      }
    })

    it('a node that was down during a pin catches up by anti-entropy', async () => {
      const { cid } = await sdk.add(randomBytes(5000), { pin: false })
      await cluster.nodes[2]!.stop()
      const before = await localPins(0)
      await sdk.pin(cid)
      assert.equal(await localPins(0), before + 1)
      await cluster.nodes[2]!.start()
      // Node 2 learns the pin from a peer within a few anti-entropy rounds (500 ms here).
      await eventually(async () => (await localPins(2)) === before + 1, 'node 2 to merge the pin')
    })

    async function localPins(i: number): Promise<number> {
      const c = new MycelClient({ nodes: [cluster.nodeAddress(i)] })
      try {
        return (await c.status()).pins
      } finally {
        c.close()
      }
    }
  })

  describe('failover between nodes', () => {
    it('a read resumes on another node when its node is killed mid-stream, with the right bytes', async () => {
      const size = 48 * 1024 * 1024
      const added = await sdk.add(deterministicChunks(size, 'failover/read'), { pin: false })
      const expected = sha256(deterministicBytes(size, 'failover/read'))
      const client = new MycelClient({ nodes: [cluster.nodeAddress(0), cluster.nodeAddress(1)] })
      try {
        const hash = createHash('sha256')
        let received = 0
        let killed = false
        for await (const chunk of client.cat(added.cid)) {
          hash.update(chunk)
          received += chunk.byteLength
          if (!killed && received >= 4 * 1024 * 1024) {
            killed = true
            await cluster.nodes[0]!.kill()
          }
        }
        assert.ok(killed)
        assert.equal(received, size)
        assert.equal(hash.digest('hex'), expected)
        assert.equal(client.addresses[0], cluster.nodeAddress(1), 'the dead node is tried last now')
      } finally {
        client.close()
        await cluster.nodes[0]!.start()
      }
    })

    it('an add from a one-shot stream fails cleanly when its node dies; from a buffer it is re-sent', async () => {
      const client = new MycelClient({ nodes: [cluster.nodeAddress(0), cluster.nodeAddress(1)] })
      try {
        let killed = false
        const killAt = async (sent: number) => {
          if (!killed && sent >= 8 * 1024 * 1024) {
            killed = true
            await cluster.nodes[0]!.kill()
          }
        }
        const stream = (async function* () {
          for (const chunk of deterministicChunks(64 * 1024 * 1024, 'failover/add')) yield chunk
        })()
        const r = await failure(client.add(stream, { onProgress: (n) => void killAt(n) }))
        assert.equal(r.code, status.UNAVAILABLE, r.details)
        assert.ok(killed)
        await cluster.nodes[0]!.start()

        killed = false
        const bytes = deterministicBytes(32 * 1024 * 1024, 'failover/add-buffer')
        const expected = (await sdk.add(bytes, { pin: false })).cid
        const again = new MycelClient({ nodes: [cluster.nodeAddress(0), cluster.nodeAddress(1)] })
        try {
          const res = await again.add(bytes, { onProgress: (n) => void killAt(n) })
          assert.ok(killed)
          assert.equal(res.cid, expected)
          assert.equal(res.size, bytes.byteLength)
        } finally {
          again.close()
        }
      } finally {
        client.close()
        if (!cluster.nodes[0]!.running) await cluster.nodes[0]!.start()
      }
    })
  })
})
