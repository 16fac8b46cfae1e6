import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type CID, parseCid } from '@mycel/core'
import { MycelClient } from '@mycel/sdk'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { sha256 } from '../helpers/data.js'
import {
  corruptShard,
  download,
  eventually,
  getShards,
  leavesOf,
  listShards,
  metricValue,
  placementOf,
  waitForNodesUp,
} from '../helpers/erasure.js'
import { hasBlocks, rawBlock, readyBlockClient } from '../helpers/grpc.js'
import { rawUpload } from '../helpers/http.js'

interface StoredFile {
  bytes: Buffer
  cid: string
  /** Leaves that are erasure-coded (at least 64 KiB). */
  coded: CID[]
}

const q = (policy: string) => `?durability=${encodeURIComponent(policy)}`

async function upload(cluster: TestCluster, size: number, policy?: string): Promise<StoredFile> {
  const bytes = randomBytes(size)
  const up = await rawUpload(cluster.gatewayUrl, bytes, policy ? q(policy) : '')
  assert.equal(up.status, 201, up.text)
  const cid = up.body.cid as string
  const leaves = await leavesOf(cluster.gatewayUrl, cid)
  // The importer's leaves are 262144 bytes except the last; those of 64 KiB and more are coded.
  const sizes = leaves.map((_, i) => Math.min(262_144, size - i * 262_144))
  return { bytes, cid, coded: leaves.filter((_, i) => (sizes[i] as number) >= 65_536) }
}

async function assertReadsBack(cluster: TestCluster, files: StoredFile[], why: string): Promise<void> {
  for (const f of files) {
    const got = await download(cluster.gatewayUrl, f.cid)
    assert.equal(got.status, 200, `${why}: ${f.cid}: ${got.text?.slice(0, 300)}`)
    assert.equal(got.hash, sha256(f.bytes), `${why}: ${f.cid} reads back identical`)
  }
}

async function killAll(cluster: TestCluster, nodes: number[]): Promise<void> {
  await Promise.all(nodes.map((i) => cluster.nodes[i]!.kill()))
}

async function restartAll(cluster: TestCluster, nodes: number[]): Promise<void> {
  await Promise.all(nodes.map((i) => cluster.nodes[i]!.start()))
  await waitForNodesUp(cluster, cluster.nodes.length)
}

// Scrub is off and repair passes are 10 minutes apart here, so these tests see the read path alone.
describe('erasure coding: 2+1, 4+2 and 6+3 on 9 nodes', () => {
  let cluster: TestCluster
  before(async () => {
    cluster = await startCluster({
      nodes: 9,
      env: { MYCEL_SCRUB_RATE_BYTES: '0' },
    })
  })
  after(async () => {
    await cluster?.destroy()
  })

  for (const [k, m] of [
    [2, 1],
    [4, 2],
    [6, 3],
  ] as const) {
    const policy = `ec:${k}+${m}`
    let files: StoredFile[] = []

    it(`${policy}: random files round-trip, each shard on its placement node`, async () => {
      // One coded block, three leaves (the last one small, so replicated), and a small file.
      files = [
        await upload(cluster, 70_000 + k, policy),
        await upload(cluster, 2 * 262_144 + 1000, policy),
        await upload(cluster, 5000, policy),
      ]
      await assertReadsBack(cluster, files, 'all nodes up')
      for (const leaf of files.flatMap((f) => f.coded)) {
        const owners = placementOf(cluster, leaf, k + m).slice(0, k + m)
        for (const [index, node] of owners.entries()) {
          const held = await listShards(cluster.nodeAddress(node), leaf)
          assert.deepEqual(held, [{ k, m, index }], `node ${node} holds shard ${index} of ${leaf}`)
        }
      }
    })

    it(`${policy}: every file reads back with any ${m} nodes down; degraded reads are counted`, async () => {
      const first = files[0]!.coded[0]!
      const owners = placementOf(cluster, first, k + m)
      // The owners of the first data shards: that block must be decoded from parity.
      const dataOwners = owners.slice(0, m)
      // Then the owners of the parity shards: every data shard is there, no decoding.
      const parityOwners = owners.slice(k, k + m)
      // For 4+2 also m nodes picked at random (one more restart cycle; the others keep the suite short).
      const random = [...cluster.nodes.keys()].sort(() => Math.random() - 0.5).slice(0, m)
      const degradedReads = () =>
        metricValue(cluster.gatewayUrl, 'mycel_gateway_ec_reads_total', { result: 'degraded' })
      for (const down of k === 4 ? [dataOwners, parityOwners, random] : [dataOwners, parityOwners]) {
        await killAll(cluster, down)
        try {
          // The single-block file first: its one block is the one these kill sets aim at.
          const before = await degradedReads()
          await assertReadsBack(cluster, files.slice(0, 1), `nodes ${down.join(',')} down`)
          const degraded = (await degradedReads()) - before
          if (down === dataOwners) assert.equal(degraded, 1, 'the decoded read is counted as degraded')
          if (down === parityOwners) assert.equal(degraded, 0, 'data shards only: no decode')
          await assertReadsBack(cluster, files, `nodes ${down.join(',')} down`)
        } finally {
          await restartAll(cluster, down)
        }
      }
    })

    it(`${policy}: with ${m + 1} nodes down a read fails with a clear error, never wrong bytes`, async () => {
      const single = files[0]!
      const down = placementOf(cluster, single.coded[0]!, k + m).slice(0, m + 1)
      await killAll(cluster, down)
      try {
        const got = await download(cluster.gatewayUrl, single.cid)
        assert.equal(got.status, 504)
        assert.match(
          got.text ?? '',
          new RegExp(`is erasure-coded \\(ec:${k}\\+${m}\\): found ${k - 1} of the ${k} shards needed`),
        )
        for (const f of files) {
          const other = await download(cluster.gatewayUrl, f.cid)
          // A file whose blocks all kept K shards may still be read; a failure is never a body.
          if (other.hash !== undefined) assert.equal(other.hash, sha256(f.bytes), 'never wrong bytes')
        }
      } finally {
        await restartAll(cluster, down)
      }
    })
  }

  it('a corrupt shard is detected on read, the read succeeds, and the shard is written back', async () => {
    const [k, m] = [4, 2]
    const file = await upload(cluster, 100_000, `ec:${k}+${m}`)
    const leaf = file.coded[0]!
    const owner = placementOf(cluster, leaf, k + m)[1]!
    await corruptShard(cluster, owner, leaf, k, m, 1)
    await waitForNodesUp(cluster, 9)
    const corruptBefore = await metricValue(cluster.adminUrl(owner), 'mycel_node_shards_corrupt_total')
    await assertReadsBack(cluster, [file], 'one shard corrupt')
    assert.equal(
      (await metricValue(cluster.adminUrl(owner), 'mycel_node_shards_corrupt_total', { found_by: 'read' })) -
        corruptBefore,
      1,
      'the node found the corrupt shard when it was read, and dropped it',
    )
    await eventually('read repair restores the dropped shard', async () => {
      const shards = await getShards(cluster.nodeAddress(owner), leaf)
      return shards.length === 1
    })
  })

  it('a shard written to the next node while its owner was down is found by reads', async () => {
    const bytes = randomBytes(90_000)
    const { cid } = rawBlock(bytes)
    const order = placementOf(cluster, cid, 3)
    await cluster.nodes[order[1]!]!.kill()
    let up: Awaited<ReturnType<typeof rawUpload>>
    try {
      up = await rawUpload(cluster.gatewayUrl, bytes, q('ec:2+1'))
      assert.equal(up.status, 201, up.text)
    } finally {
      await restartAll(cluster, [order[1]!])
    }
    assert.equal(up.body.cid, cid.toString())
    assert.deepEqual(await listShards(cluster.nodeAddress(order[3]!), cid), [{ k: 2, m: 1, index: 1 }])
    // The owner of shard 1 is back but empty: with the owner of shard 0 down, shard 1 must come
    // from the node ranked after the owners.
    await killAll(cluster, [order[0]!])
    try {
      const got = await download(cluster.gatewayUrl, cid.toString())
      assert.equal(got.status, 200, got.text)
      assert.equal(got.hash, sha256(bytes))
    } finally {
      await restartAll(cluster, [order[0]!])
    }
  })

  it('the public gRPC Add takes ec:K+M as the HTTP upload does; the pin records the policy', async () => {
    const sdk = new MycelClient({ nodes: [cluster.nodeAddress(0)] })
    try {
      const bytes = randomBytes(2 * 262_144 + 5000)
      const added = await sdk.add(bytes, { durability: 'ec:2+1', pinName: 'coded' })
      const leaves = await leavesOf(cluster.gatewayUrl, added.cid)
      for (const leaf of leaves.slice(0, 2)) {
        const owners = placementOf(cluster, leaf, 3).slice(0, 3)
        for (const [index, node] of owners.entries()) {
          assert.deepEqual(await listShards(cluster.nodeAddress(node), leaf), [{ k: 2, m: 1, index }])
        }
      }
      const chunks: Buffer[] = []
      for await (const chunk of sdk.cat(added.cid)) chunks.push(Buffer.from(chunk))
      assert.equal(sha256(Buffer.concat(chunks)), sha256(bytes))
      const [pin] = await sdk.listPins({ cids: [added.cid] })
      assert.equal(pin?.durability, 'ec:2+1')
    } finally {
      sdk.close()
    }
  })

  it('a policy the cluster cannot place is refused with 400', async () => {
    const up = await rawUpload(cluster.gatewayUrl, randomBytes(100_000), q('ec:6+4'))
    assert.equal(up.status, 400, up.text)
    assert.match(up.text, /ec:6\+4 needs 10 storage nodes \(one per shard\); the cluster has 9/)
  })
})

// Scrub and repair run every few hundred milliseconds here.
describe('erasure coding: mixed policies, restarts, scrub and repair on 6 nodes', () => {
  let cluster: TestCluster
  const files = new Map<string, StoredFile>()
  before(async () => {
    cluster = await startCluster({
      nodes: 6,
      env: {
        MYCEL_SCRUB_RATE_BYTES: String(64 * 1024 * 1024),
        MYCEL_SCRUB_INTERVAL_MS: '300',
        MYCEL_REPAIR_INTERVAL_MS: '300',
      },
    })
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('keeps each upload under its own policy in one cluster; the default is ec:4+2 here', async () => {
    files.set('replicate:3', await upload(cluster, 3 * 262_144, 'replicate:3'))
    files.set('ec:4+2', await upload(cluster, 3 * 262_144, 'ec:4+2'))
    files.set('ec:2+1', await upload(cluster, 3 * 262_144, 'ec:2+1'))
    files.set('default', await upload(cluster, 3 * 262_144))
    await assertReadsBack(cluster, [...files.values()], 'mixed policies')
    const status = (await (await fetch(`${cluster.gatewayUrl}/mycel/v1/status`)).json()) as {
      defaultDurability: string
    }
    assert.equal(status.defaultDurability, 'auto')
    await assertPolicies(cluster, files)
  })

  it('the public gRPC API (SDK) adds with ec:K+M, records it with the pin, and nodes read coded content', async () => {
    const sdk = new MycelClient({ nodes: [cluster.nodeAddress(0)] })
    try {
      const bytes = randomBytes(3 * 262_144 + 100)
      const added = await sdk.add(bytes, { durability: 'ec:2+1' })
      const chunks: Buffer[] = []
      for await (const c of sdk.cat(added.cid)) chunks.push(Buffer.from(c))
      assert.equal(sha256(Buffer.concat(chunks)), sha256(bytes))
      const pins = await sdk.listPins()
      assert.equal(pins.find((p) => p.cid === added.cid)?.durability, 'ec:2+1')
      const leaves = await leavesOf(cluster.gatewayUrl, added.cid)
      const listed = (
        await Promise.all(cluster.nodes.map((_, i) => listShards(cluster.nodeAddress(i), leaves[0]!)))
      ).flat()
      assert.equal(listed.length, 3, 'the first leaf is stored as 2+1 shards')
      assert.ok(
        (await metricValue(cluster.adminUrl(0), 'mycel_node_ec_reads_total')) >= 3,
        'node 0 counts the coded reads it coordinated',
      )
      await assert.rejects(
        sdk.add(Buffer.from('x'), { durability: 'ec:6+3' }),
        /ec:6\+3 needs 9 storage nodes/,
      )
    } finally {
      sdk.close()
    }
  })

  it('policies survive a restart of the whole cluster', async () => {
    await cluster.stop()
    await cluster.start()
    await assertReadsBack(cluster, [...files.values()], 'after restart')
    await assertPolicies(cluster, files)
  })

  it('scrub finds a corrupt shard on disk and rebuilds it', async () => {
    const file = await upload(cluster, 90_000, 'ec:4+2')
    const leaf = file.coded[0]!
    const owner = placementOf(cluster, leaf, 6)[2]!
    await corruptShard(cluster, owner, leaf, 4, 2, 2)
    await waitForNodesUp(cluster, 6)
    await eventually('scrub reports the corrupt shard', async () => {
      return (
        (await metricValue(cluster.adminUrl(owner), 'mycel_node_shards_corrupt_total', {
          found_by: 'scrub',
        })) >= 1
      )
    })
    await eventually('the shard is rebuilt on its owner', async () => {
      return (await getShards(cluster.nodeAddress(owner), leaf)).length === 1
    })
    await assertReadsBack(cluster, [file], 'after scrub')
  })

  it('repair restores the shards of a node that lost its disk; then any 2 other nodes may fail', async () => {
    const coded = [await upload(cluster, 200_000, 'ec:4+2'), await upload(cluster, 150_000, 'ec:4+2')]
    const lost = 3
    await cluster.nodes[lost]!.stop()
    await rm(join(cluster.dataDir, `node-${lost}`, 'blocks'), { recursive: true, force: true })
    await cluster.nodes[lost]!.start()
    await waitForNodesUp(cluster, 6)
    for (const f of coded) {
      const leaf = f.coded[0]!
      const index = placementOf(cluster, leaf, 6).indexOf(lost)
      await eventually(`repair rebuilds shard ${index} of ${leaf} on node ${lost}`, async () => {
        const held = await listShards(cluster.nodeAddress(lost), leaf)
        return held.some((s) => s.index === index)
      })
    }
    const status = (await (await fetch(`${cluster.gatewayUrl}/mycel/v1/status`)).json()) as {
      repair: { shardsRebuilt: number }
    }
    assert.ok(
      status.repair.shardsRebuilt >= 2,
      `the status counts rebuilt shards (${status.repair.shardsRebuilt})`,
    )
    // With 6 nodes and 4+2, any 2 down leave exactly 4 shards: the rebuilt one is needed.
    const down = [0, 1, 2, 4, 5].filter((i) => i !== lost).slice(0, 2)
    await killAll(cluster, down)
    try {
      await assertReadsBack(cluster, coded, `node ${lost} rebuilt, nodes ${down.join(',')} down`)
    } finally {
      await restartAll(cluster, down)
    }
  })

  it('a node removed from the membership: repair moves every shard to its new owner; then M more may fail', async () => {
    const coded = [await upload(cluster, 100_000, 'ec:2+1'), await upload(cluster, 120_000, 'ec:2+1')]
    // Static membership: restarting every process with node 5 left out of MYCEL_PEERS is what
    // gossip does when it declares the node dead. Same ports and data: the others keep their ids.
    await cluster.stop()
    const smaller = await startCluster({
      nodes: 5,
      dataDir: cluster.dataDir,
      ports: cluster.ports,
      env: {
        MYCEL_SCRUB_RATE_BYTES: '0',
        MYCEL_REPAIR_INTERVAL_MS: '300',
      },
    })
    try {
      for (const f of coded) {
        const leaf = f.coded[0]!
        const owners = placementOf(smaller, leaf, 3).slice(0, 3)
        await eventually(`every shard of ${leaf} on its owner, and only there`, async () => {
          const held = await Promise.all(
            smaller.nodes.map((_, i) => listShards(smaller.nodeAddress(i), leaf)),
          )
          return held.every((refs, node) => {
            const index = owners.indexOf(node)
            return index < 0 ? refs.length === 0 : refs.length === 1 && refs[0]!.index === index
          })
        })
      }
      const down = placementOf(smaller, coded[0]!.coded[0]!, 3)[0]!
      await smaller.nodes[down]!.kill()
      await assertReadsBack(smaller, coded, `node 5 gone, node ${down} down`)
    } finally {
      await smaller.stop()
      await cluster.start()
      await waitForNodesUp(cluster, 6)
    }
  })
})

/** Leaves of replicated uploads are blocks on 3 nodes; leaves of coded ones are shards of their code. */
async function assertPolicies(cluster: TestCluster, files: Map<string, StoredFile>): Promise<void> {
  for (const [policy, file] of files) {
    const root = parseCid(file.cid)
    const leaves = await leavesOf(cluster.gatewayUrl, root.toString())
    const [k, m] = policy === 'ec:2+1' ? [2, 1] : [4, 2]
    for (const leaf of leaves) {
      const listed = (
        await Promise.all(cluster.nodes.map((_, i) => listShards(cluster.nodeAddress(i), leaf)))
      ).flat()
      if (policy === 'replicate:3') {
        assert.deepEqual(listed, [], 'a replicated leaf has no shards')
        let copies = 0
        for (const i of cluster.nodes.keys()) {
          const client = await readyBlockClient(cluster.nodeAddress(i))
          try {
            if ((await hasBlocks(client, [leaf]))[0]) copies++
          } finally {
            client.close()
          }
        }
        assert.equal(copies, 3, 'three copies of a replicated leaf')
      } else {
        assert.equal(listed.length, k + m, `${policy}: ${k + m} shards of each leaf`)
        assert.ok(
          listed.every((s) => s.k === k && s.m === m),
          `${policy}: shards record their code`,
        )
      }
    }
  }
}
