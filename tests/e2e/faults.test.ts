import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { blockKey, type CID, createLogger, parseCid, placeCopies } from '@mycel/core'
import { RocksBlockStore } from '@mycel/node'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { deterministicBytes, deterministicChunks, sha256, sha256OfResponse } from '../helpers/data.js'
import { getBlock, readyBlockClient } from '../helpers/grpc.js'
import { rawUpload } from '../helpers/http.js'

/** A request body that trickles out, calling `midway` once half of it is sent. */
function slowBody(size: number, seed: string, midway: () => Promise<void>): ReadableStream<Uint8Array> {
  const chunks = deterministicChunks(size, seed, 256 * 1024)
  let sent = 0
  let fired = false
  return new ReadableStream({
    async pull(controller) {
      const next = chunks.next()
      if (next.done) return controller.close()
      sent += next.value.length
      if (!fired && sent >= size / 2) {
        fired = true
        await midway()
      }
      await sleep(2)
      controller.enqueue(next.value)
    },
  })
}

/**
 * Every node alive (not merely routable) and answering in the gateway's view: a restarted node
 * that was briefly suspected is asked last by reads, and the corruption test needs the reads to
 * follow placement order.
 */
async function waitForNodesUp(cluster: TestCluster, count: number): Promise<void> {
  await cluster.waitForMembers(
    (members) => members.filter((m) => m.state === 'alive' && m.reachable).length === count,
    30_000,
    `${count} nodes alive`,
  )
}

describe('faults: node loss, quorum, corruption, restart', () => {
  let cluster: TestCluster
  before(async () => {
    cluster = await startCluster({ nodes: 3 })
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('an upload succeeds while the write quorum holds, with a node SIGKILLed midway', async () => {
    const size = 24 * 1024 * 1024
    const body = slowBody(size, 'kill-midway', () => cluster.nodes[2]!.kill())
    const res = await fetch(`${cluster.gatewayUrl}/mycel/v1/upload`, {
      method: 'POST',
      body,
      duplex: 'half',
    })
    const text = await res.text()
    assert.equal(res.status, 201, text)
    const { cid } = JSON.parse(text) as { cid: string }
    const got = await sha256OfResponse(await fetch(`${cluster.gatewayUrl}/ipfs/${cid}`))
    assert.equal(got.hash, sha256(deterministicBytes(size, 'kill-midway')))
  })

  it('downloads still succeed with R-1 nodes down', async () => {
    await cluster.nodes[2]!.start()
    await waitForNodesUp(cluster, 3)
    const bytes = deterministicBytes(3 * 262_144 + 11, 'two-down')
    const up = await rawUpload(cluster.gatewayUrl, bytes)
    assert.equal(up.status, 201, up.text)
    await cluster.nodes[0]!.kill()
    const one = await sha256OfResponse(await fetch(`${cluster.gatewayUrl}/ipfs/${up.body.cid}`))
    assert.equal(one.hash, sha256(bytes), 'one node down')
    await cluster.nodes[1]!.kill()
    const two = await sha256OfResponse(await fetch(`${cluster.gatewayUrl}/ipfs/${up.body.cid}`))
    assert.equal(two.hash, sha256(bytes), 'two nodes down')
  })

  it('an upload fails with a clear 503 when the write quorum cannot be met', async () => {
    // Nodes 0 and 1 are down: only one copy can be written, W=2.
    const up = await rawUpload(cluster.gatewayUrl, deterministicBytes(600_000, 'no-quorum'))
    assert.equal(up.status, 503, up.text)
    assert.match(up.text, /write quorum not reached: needed 2, acknowledged by 1/)
  })

  it('a block that cannot be reached answers 504, an unknown one 404', async () => {
    await cluster.nodes[2]!.kill()
    const res = await fetch(
      `${cluster.gatewayUrl}/ipfs/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy`,
    )
    assert.equal(res.status, 504)
    for (const n of cluster.nodes) await n.start()
    await waitForNodesUp(cluster, 3)
    const unknown = await fetch(
      `${cluster.gatewayUrl}/ipfs/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy`,
    )
    assert.equal(unknown.status, 404)
  })

  it('a corrupt copy is detected on read, served from another replica and repaired', async () => {
    const bytes = deterministicBytes(4 * 262_144, 'corrupt')
    const up = await rawUpload(cluster.gatewayUrl, bytes)
    assert.equal(up.status, 201, up.text)
    const root = parseCid(up.body.cid as string)
    // Corrupt the first-ranked copy of every leaf, and the second-ranked too: one good copy left.
    const leaves: CID[] = await leafCids(cluster, root)
    const nodeIds = cluster.nodes.map((_, i) => ({
      id: cluster.nodeId(i),
      zone: 'default',
      weight: 1,
      index: i,
    }))
    const damaged = new Map<number, CID[]>()
    for (const leaf of leaves) {
      for (const n of placeCopies(blockKey(leaf), nodeIds, 3).slice(0, 2)) {
        damaged.set(n.index, [...(damaged.get(n.index) ?? []), leaf])
      }
    }
    for (const [index, cids] of damaged) {
      await cluster.nodes[index]!.stop()
      const store = await RocksBlockStore.open({
        path: join(cluster.dataDir, `node-${index}`, 'blocks'),
        syncWrites: true,
        logger: createLogger('test', 'silent'),
      })
      for (const cid of cids) await store.putUnverifiedForTesting(cid, Buffer.alloc(262_144, 0xee))
      await store.close()
      await cluster.nodes[index]!.start()
    }
    await waitForNodesUp(cluster, 3)
    const got = await sha256OfResponse(await fetch(`${cluster.gatewayUrl}/ipfs/${root}`))
    assert.equal(got.hash, sha256(bytes))
    // Read repair puts good copies back on the nodes that dropped their corrupt ones.
    await sleep(1000)
    for (const [index, cids] of damaged) {
      const client = await readyBlockClient(cluster.nodeAddress(index))
      try {
        for (const cid of cids) {
          const i = leaves.findIndex((l) => l.equals(cid))
          const expected = bytes.subarray(i * 262_144, (i + 1) * 262_144)
          assert.equal(
            sha256(await getBlock(client, cid)),
            sha256(expected),
            `node ${index} has a good copy again`,
          )
        }
      } finally {
        client.close()
      }
    }
  })

  it('a restart of the whole cluster keeps all data', async () => {
    const files = [0, 5000, 1_000_000].map((size) => deterministicBytes(size, `restart-${size}`))
    const cids: string[] = []
    for (const f of files) {
      const up = await rawUpload(cluster.gatewayUrl, f)
      assert.equal(up.status, 201, up.text)
      cids.push(up.body.cid as string)
    }
    await cluster.stop()
    await cluster.start()
    for (const [i, cid] of cids.entries()) {
      const got = await sha256OfResponse(await fetch(`${cluster.gatewayUrl}/ipfs/${cid}`))
      assert.equal(got.hash, sha256(files[i]!))
    }
  })
})

/** The raw leaves of a file DAG, read through node 0's gRPC API. */
async function leafCids(cluster: TestCluster, root: CID): Promise<CID[]> {
  const { decode } = await import('@ipld/dag-pb')
  const client = await readyBlockClient(cluster.nodeAddress(0))
  try {
    const node = decode(await getBlock(client, root))
    return node.Links.map((l) => l.Hash as unknown as CID)
  } finally {
    client.close()
  }
}
