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
  getShards,
  leavesOf,
  listShards,
  metricValue,
  placementOf,
  RESTART_TIMEOUT_MS,
} from '../helpers/erasure.js'
import { hasBlocks, rawBlock, readyBlockClient } from '../helpers/grpc.js'
import { rawUpload } from '../helpers/http.js'
import { allAlive, everyoneSees } from '../helpers/membership.js'
import { eventually } from '../helpers/poll.js'
import { type ClusterStatus, clusterStatus, waitFor, waitForRepairQuiet } from '../helpers/repair.js'

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

/** Starts the nodes again and waits until every node and the gateway see all of them alive. */
async function restartAll(cluster: TestCluster, nodes: number[]): Promise<void> {
  await Promise.all(nodes.filter((i) => !cluster.nodes[i]!.running).map((i) => cluster.nodes[i]!.start()))
  await allAlive(cluster, RESTART_TIMEOUT_MS)
}

/**
 * Killed nodes stay suspect (still placed, asked last) for the whole suite, so placement holds
 * still while nodes are down and restarted; scrub is off and repair passes are minutes apart, so
 * these tests see the read path alone.
 */
const READ_PATH_ENV = { MYCEL_SCRUB_RATE_BYTES: '0', MYCEL_DEAD_AFTER_MS: '600000' }

/**
 * For ec:K+M: random files round-trip with every shard on its placement node; with any M nodes
 * down every file reads back (degraded reads counted); with M+1 down a read fails with a clear
 * error and never returns wrong bytes.
 */
function codeTests(cluster: () => TestCluster, k: number, m: number, randomKills: boolean): void {
  const policy = `ec:${k}+${m}`
  let files: StoredFile[] = []

  it(`${policy}: random files round-trip, each shard on its placement node`, async () => {
    const c = cluster()
    // One coded block, three leaves (the last one small, so replicated), and a small file.
    files = [
      await upload(c, 70_000 + k, policy),
      await upload(c, 2 * 262_144 + 1000, policy),
      await upload(c, 5000, policy),
    ]
    await assertReadsBack(c, files, 'all nodes up')
    for (const leaf of files.flatMap((f) => f.coded)) {
      const owners = placementOf(c, leaf, k + m).slice(0, k + m)
      for (const [index, node] of owners.entries()) {
        const held = await listShards(c.nodeAddress(node), leaf)
        assert.deepEqual(held, [{ k, m, index }], `node ${node} holds shard ${index} of ${leaf}`)
      }
    }
  })

  it(`${policy}: every file reads back with any ${m} nodes down; degraded reads are counted`, async () => {
    const c = cluster()
    const first = files[0]!.coded[0]!
    const owners = placementOf(c, first, k + m)
    // The owners of the first data shards: that block must be decoded from parity.
    const dataOwners = owners.slice(0, m)
    // Then the owners of the parity shards: every data shard is there, no decoding.
    const parityOwners = owners.slice(k, k + m)
    const random = [...c.nodes.keys()].sort(() => Math.random() - 0.5).slice(0, m)
    const degradedReads = () =>
      metricValue(c.gatewayUrl, 'mycel_gateway_ec_reads_total', { result: 'degraded' })
    for (const down of randomKills ? [dataOwners, parityOwners, random] : [dataOwners, parityOwners]) {
      await killAll(c, down)
      try {
        // The single-block file first: its one block is the one these kill sets aim at.
        const before = await degradedReads()
        await assertReadsBack(c, files.slice(0, 1), `nodes ${down.join(',')} down`)
        const degraded = (await degradedReads()) - before
        if (down === dataOwners) assert.equal(degraded, 1, 'the decoded read is counted as degraded')
        if (down === parityOwners) assert.equal(degraded, 0, 'data shards only: no decode')
        await assertReadsBack(c, files, `nodes ${down.join(',')} down`)
      } finally {
        await restartAll(c, down)
      }
    }
  })

  it(`${policy}: with ${m + 1} nodes down a read fails with a clear error, never wrong bytes`, async () => {
    const c = cluster()
    const single = files[0]!
    const down = placementOf(c, single.coded[0]!, k + m).slice(0, m + 1)
    await killAll(c, down)
    try {
      const got = await download(c.gatewayUrl, single.cid)
      assert.equal(got.status, 504)
      assert.match(
        got.text ?? '',
        new RegExp(`is erasure-coded \\(ec:${k}\\+${m}\\): found ${k - 1} of the ${k} shards needed`),
      )
      for (const f of files) {
        const other = await download(c.gatewayUrl, f.cid)
        // A file whose blocks all kept K shards may still be read; a failure is never a body.
        if (other.hash !== undefined) assert.equal(other.hash, sha256(f.bytes), 'never wrong bytes')
      }
    } finally {
      await restartAll(c, down)
    }
  })
}

describe('erasure coding: 2+1 and 4+2 on 6 nodes, the read path', () => {
  let cluster: TestCluster
  before(async () => {
    cluster = await startCluster({ nodes: 6, env: READ_PATH_ENV })
  })
  after(async () => {
    await cluster?.destroy()
  })

  codeTests(() => cluster, 2, 1, false)
  // For 4+2 also M nodes picked at random (one more restart cycle; the others keep the suite short).
  codeTests(() => cluster, 4, 2, true)

  it('a corrupt shard is detected on read, the read succeeds, and the shard is written back', async () => {
    const [k, m] = [4, 2]
    const file = await upload(cluster, 100_000, `ec:${k}+${m}`)
    const leaf = file.coded[0]!
    const owner = placementOf(cluster, leaf, k + m)[1]!
    await corruptShard(cluster, owner, leaf, k, m, 1)
    const corruptBefore = await metricValue(cluster.adminUrl(owner), 'mycel_node_shards_corrupt_total')
    await assertReadsBack(cluster, [file], 'one shard corrupt')
    assert.equal(
      (await metricValue(cluster.adminUrl(owner), 'mycel_node_shards_corrupt_total', { found_by: 'read' })) -
        corruptBefore,
      1,
      'the node found the corrupt shard when it was read, and dropped it',
    )
    await eventually(
      async () => {
        const shards = await getShards(cluster.nodeAddress(owner), leaf)
        return shards.length === 1
      },
      'read repair restores the dropped shard',
      120_000,
    )
  })

  it('a shard written to the next node while its owner was down is found by reads', async () => {
    const bytes = randomBytes(90_000)
    const { cid } = rawBlock(bytes)
    const order = placementOf(cluster, cid, 3)
    const down = [order[1]!]
    await killAll(cluster, down)
    try {
      const up = await rawUpload(cluster.gatewayUrl, bytes, q('ec:2+1'))
      assert.equal(up.status, 201, up.text)
      assert.equal(up.body.cid, cid.toString())
      assert.deepEqual(await listShards(cluster.nodeAddress(order[3]!), cid), [{ k: 2, m: 1, index: 1 }])
      // With the owners of shards 0 and 1 both down, shard 1 can only come from the node ranked
      // after the owners (the read's sweep); the owner of shard 1 being down keeps it there.
      down.push(order[0]!)
      await killAll(cluster, [order[0]!])
      const got = await download(cluster.gatewayUrl, cid.toString())
      assert.equal(got.status, 200, got.text)
      assert.equal(got.hash, sha256(bytes))
    } finally {
      await restartAll(cluster, down)
    }
  })

  it('the public gRPC API (SDK) adds with ec:K+M: shards on their placement nodes, the pin records it, nodes count coded reads', async () => {
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
      const before = await metricValue(cluster.adminUrl(0), 'mycel_node_ec_reads_total')
      const chunks: Buffer[] = []
      for await (const chunk of sdk.cat(added.cid)) chunks.push(Buffer.from(chunk))
      assert.equal(sha256(Buffer.concat(chunks)), sha256(bytes))
      assert.ok(
        (await metricValue(cluster.adminUrl(0), 'mycel_node_ec_reads_total')) - before >= 2,
        'node 0 counts the coded reads it coordinated',
      )
      const [pin] = await sdk.listPins({ cids: [added.cid] })
      assert.equal(pin?.durability, 'ec:2+1')
      await assert.rejects(
        sdk.add(Buffer.from('x'), { durability: 'ec:6+3' }),
        /ec:6\+3 needs 9 storage nodes/,
      )
    } finally {
      sdk.close()
    }
  })

  it('a policy the cluster cannot place is refused with 400', async () => {
    const up = await rawUpload(cluster.gatewayUrl, randomBytes(100_000), q('ec:4+3'))
    assert.equal(up.status, 400, up.text)
    assert.match(up.text, /ec:4\+3 needs 7 storage nodes \(one per shard\); the cluster has 6/)
  })
})

describe('erasure coding: 6+3 on 9 nodes, the read path', () => {
  let cluster: TestCluster
  before(async () => {
    cluster = await startCluster({ nodes: 9, env: READ_PATH_ENV })
  })
  after(async () => {
    await cluster?.destroy()
  })

  codeTests(() => cluster, 6, 3, false)
})

// Scrub and repair run every few hundred milliseconds here; killed nodes stay suspect.
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
        MYCEL_DEAD_AFTER_MS: '600000',
      },
    })
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('keeps each upload under its own policy in one cluster; the default is ec:4+2 here', async () => {
    const uploaded = new Date()
    files.set('replicate:3', await upload(cluster, 3 * 262_144, 'replicate:3'))
    files.set('ec:4+2', await upload(cluster, 3 * 262_144, 'ec:4+2'))
    files.set('ec:2+1', await upload(cluster, 3 * 262_144, 'ec:2+1'))
    files.set('default', await upload(cluster, 3 * 262_144))
    await assertReadsBack(cluster, [...files.values()], 'mixed policies')
    const status = (await (await fetch(`${cluster.gatewayUrl}/mycel/v1/status`)).json()) as {
      defaultDurability: string
    }
    assert.equal(status.defaultDurability, 'auto')
    // A copy or shard a slow node did not acknowledge in time went to the next node (hinted):
    // exact counts hold once repair has handed such extras to their owners.
    await waitForRepairQuiet(cluster.gatewayUrl, 6, uploaded)
    await assertPolicies(cluster, files)
  })

  it('policies survive a restart of the whole cluster', async () => {
    await cluster.stop()
    const restarted = new Date()
    await cluster.start()
    await assertReadsBack(cluster, [...files.values()], 'after restart')
    // Nodes that came up first ran passes over a partial membership: whatever they moved goes home.
    await waitForRepairQuiet(cluster.gatewayUrl, 6, restarted)
    await assertPolicies(cluster, files)
  })

  it('scrub finds a corrupt shard on disk and rebuilds it', async () => {
    const file = await upload(cluster, 90_000, 'ec:4+2')
    const leaf = file.coded[0]!
    const owner = placementOf(cluster, leaf, 6)[2]!
    await corruptShard(cluster, owner, leaf, 4, 2, 2)
    await eventually(
      async () => {
        return (
          (await metricValue(cluster.adminUrl(owner), 'mycel_node_shards_corrupt_total', {
            found_by: 'scrub',
          })) >= 1
        )
      },
      'scrub reports the corrupt shard',
      120_000,
    )
    await eventually(
      async () => {
        return (await getShards(cluster.nodeAddress(owner), leaf)).length === 1
      },
      'the shard is rebuilt on its owner',
      120_000,
    )
    await assertReadsBack(cluster, [file], 'after scrub')
  })

  it('repair restores the shards of a node that lost its disk; then any 2 other nodes may fail', async () => {
    const coded = [await upload(cluster, 200_000, 'ec:4+2'), await upload(cluster, 150_000, 'ec:4+2')]
    const lost = 3
    // Rebuilt shards as each node counts them (counters live in the process: the restarted node's
    // starts again from 0, so a cluster-wide difference could miss what it rebuilt).
    const rebuiltBy = (s: ClusterStatus) =>
      new Map(s.nodes.map((n) => [n.address, n.repair?.shardsRebuilt ?? 0]))
    const before = rebuiltBy(await clusterStatus(cluster.gatewayUrl))
    await cluster.nodes[lost]!.stop()
    await rm(join(cluster.dataDir, `node-${lost}`, 'blocks'), { recursive: true, force: true })
    await restartAll(cluster, [lost])
    for (const f of coded) {
      const leaf = f.coded[0]!
      const index = placementOf(cluster, leaf, 6).indexOf(lost)
      await eventually(
        async () => {
          const held = await listShards(cluster.nodeAddress(lost), leaf)
          return held.some((s) => s.index === index)
        },
        `repair rebuilds shard ${index} of ${leaf} on node ${lost}`,
        120_000,
      )
    }
    // The gateway's status shows the nodes' counters from its probes (every 2 s): it may lag.
    await waitFor(
      'the status to count the rebuilt shards',
      () => clusterStatus(cluster.gatewayUrl),
      (s) => {
        let rebuilt = 0
        for (const [address, n] of rebuiltBy(s))
          rebuilt += address === cluster.nodeAddress(lost) ? n : n - (before.get(address) ?? 0)
        return rebuilt >= 2
      },
      60_000,
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
})

// Gossip declares a killed node dead after 3 s here, so repair starts at once.
describe('erasure coding: a node killed and declared dead on 6 nodes', () => {
  let cluster: TestCluster
  before(async () => {
    cluster = await startCluster({
      nodes: 6,
      env: { MYCEL_DEAD_AFTER_MS: '3000', MYCEL_SCRUB_RATE_BYTES: '0', MYCEL_REPAIR_INTERVAL_MS: '300' },
    })
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('repair restores every shard on the new owners; then M other nodes may fail and every file reads back', async () => {
    const files = [
      await upload(cluster, 100_000, 'ec:2+1'),
      await upload(cluster, 120_000, 'ec:2+1'),
      await upload(cluster, 140_000, 'ec:3+2'),
      await upload(cluster, 2 * 262_144 + 70_000, 'ec:3+2'),
    ]
    const codeOf = (f: StoredFile) => (files.indexOf(f) < 2 ? { k: 2, m: 1 } : { k: 3, m: 2 })
    // The owner of the first shard of the first file dies: its shards must be rebuilt elsewhere.
    const dead = placementOf(cluster, files[0]!.coded[0]!, 3)[0]!
    const live = [...cluster.nodes.keys()].filter((i) => i !== dead)
    const killed = new Date()
    await cluster.nodes[dead]!.kill()
    await everyoneSees(cluster, dead, ['dead'], live, RESTART_TIMEOUT_MS)
    for (const f of files) {
      const { k, m } = codeOf(f)
      for (const leaf of f.coded) {
        const owners = placementOf(cluster, leaf, k + m, [dead]).slice(0, k + m)
        await eventually(
          async () => {
            const held = await Promise.all(live.map((i) => listShards(cluster.nodeAddress(i), leaf)))
            return held.every((refs, j) => {
              const index = owners.indexOf(live[j]!)
              return index < 0 ? refs.length === 0 : refs.length === 1 && refs[0]!.index === index
            })
          },
          `every shard of ${leaf} on its new owner, and only there`,
          120_000,
        )
      }
    }
    const quiet = await waitForRepairQuiet(cluster.gatewayUrl, 5, killed)
    assert.ok(quiet.repair.shardsRebuilt > 0, 'the status counts the rebuilt shards')
    // One more node down (an owner of the first rebuilt block): every file still reads back.
    const first = placementOf(cluster, files[0]!.coded[0]!, 3, [dead]).slice(0, 1)
    await killAll(cluster, first)
    await assertReadsBack(cluster, files, `node ${dead} dead, node ${first[0]} down`)
    // A second one: the ec:3+2 files survive M = 2 losses after repair.
    const second = placementOf(cluster, files[2]!.coded[0]!, 5, [dead])
      .filter((i) => !first.includes(i))
      .slice(0, 1)
    await killAll(cluster, second)
    await assertReadsBack(cluster, files.slice(2), `node ${dead} dead, nodes ${[...first, ...second]} down`)
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
