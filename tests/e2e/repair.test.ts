import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Metadata } from '@grpc/grpc-js'
import { blockKey, type CID, idealCopies, parseCid } from '@mycel/core'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { deterministicBytes, sha256, sha256OfResponse } from '../helpers/data.js'
import { getBlock, hasBlocks, readyBlockClient } from '../helpers/grpc.js'
import { rawUpload } from '../helpers/http.js'
import { allAlive, everyoneSees } from '../helpers/membership.js'
import {
  assertHealthy,
  assertPlaced,
  type ClusterStatus,
  clusterStatus,
  corruptBlocksOnDisk,
  FAST_REPAIR,
  FAST_SCRUB,
  holdings,
  liveMembers,
  placementOf,
  type StatusNode,
  targetsOf,
  waitFor,
  waitForRepairQuiet,
} from '../helpers/repair.js'

/**
 * Repair, rebalance and scrub with real processes and gossip membership (local timings: a killed
 * node is suspect within seconds and declared dead MYCEL_DEAD_AFTER_MS = 15 s later; see
 * ARCHITECTURE.md "Membership" and "Repair and scrub"). Expected placement is computed from the
 * gateway's status (member ids, zones, weights, states), as nodes and gateways compute it.
 * Deadlines are generous: the machine is shared.
 */

/** Documented: dead ≈ 15 s after the first suspicion (local timings); the rest is load margin. */
const DEAD_DEADLINE_MS = 15_000 + 75_000

interface Uploaded {
  cid: string
  sha: string
}

async function upload(cluster: TestCluster, size: number, seed: string, query = ''): Promise<Uploaded> {
  const bytes = deterministicBytes(size, seed)
  const res = await rawUpload(cluster.gatewayUrl, bytes, query)
  assert.equal(res.status, 201, res.text)
  return { cid: res.body.cid as string, sha: sha256(bytes) }
}

async function assertReadsBack(cluster: TestCluster, files: readonly Uploaded[]): Promise<void> {
  for (const f of files) {
    const res = await fetch(`${cluster.gatewayUrl}/ipfs/${f.cid}`, { signal: AbortSignal.timeout(60_000) })
    assert.equal(res.status, 200, `GET ${f.cid}`)
    assert.equal((await sha256OfResponse(res)).hash, f.sha, `content of ${f.cid}`)
  }
}

/** Node index of a member id. */
function indexOf(cluster: TestCluster, id: string): number {
  const i = cluster.nodes.findIndex((_, j) => cluster.nodeId(j) === id)
  assert.ok(i >= 0, `no node has id ${id}`)
  return i
}

function member(s: ClusterStatus, id: string): StatusNode {
  const m = s.nodes.find((n) => n.id === id)
  assert.ok(m, `member ${id} in status`)
  return m
}

const hex = (cid: CID) => Buffer.from(blockKey(cid)).toString('hex')

/** The raw leaves of a file DAG (its root's links), read from the first node that has the root. */
async function leaves(addresses: readonly string[], root: string): Promise<CID[]> {
  const { decode } = await import('@ipld/dag-pb')
  for (const address of addresses) {
    const client = await readyBlockClient(address)
    try {
      return decode(await getBlock(client, parseCid(root))).Links.map((l) => l.Hash as unknown as CID)
    } catch {
      // not on this node (yet): try the next
    } finally {
      client.close()
    }
  }
  throw new Error(`no node holds ${root}`)
}

function deleteBlock(address: string, cid: CID): Promise<boolean> {
  return readyBlockClient(address).then(
    (client) =>
      new Promise((resolve, reject) =>
        client.deleteBlock(
          { cid: Buffer.from(cid.bytes) },
          new Metadata(),
          { deadline: Date.now() + 10_000 },
          (err, res) => {
            client.close()
            return err ? reject(err) : resolve(res.existed)
          },
        ),
      ),
  )
}

describe('repair and scrub on a 3-node cluster', () => {
  let cluster: TestCluster
  let addresses: string[]
  before(async () => {
    cluster = await startCluster({ nodes: 3, env: FAST_SCRUB })
    addresses = [0, 1, 2].map((i) => cluster.nodeAddress(i))
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('stores the upload durability record with every block, across restarts', async () => {
    const f = await upload(cluster, 3 * 262_144, 'durability-record', '?durability=replicate:2')
    const root = parseCid(f.cid)
    const first = targetsOf(hex(root), placementOf(await clusterStatus(cluster.gatewayUrl)), 2)[0] as string
    const index = indexOf(cluster, first)
    const recordOf = async () => {
      const client = await readyBlockClient(addresses[index] as string)
      try {
        return await new Promise<number | undefined>((resolve, reject) =>
          client.hasBlocks({ cids: [Buffer.from(root.bytes)] }, (err, r) =>
            err ? reject(err) : resolve(r.durability[0]?.scheme?.value.copies),
          ),
        )
      } finally {
        client.close()
      }
    }
    assert.equal(await recordOf(), 2)
    await cluster.nodes[index]?.stop()
    await cluster.nodes[index]?.start()
    assert.equal(await recordOf(), 2, 'after a restart')
    await allAlive(cluster)
  })

  it('restores a copy deleted from one of its targets', async () => {
    const f = await upload(cluster, 6 * 262_144 + 5, 'deleted-copy')
    const status = await clusterStatus(cluster.gatewayUrl)
    const blocks = await leaves(addresses, f.cid)
    const victim = blocks[2] as CID
    const target = member(status, targetsOf(hex(victim), placementOf(status))[1] as string).address
    assert.equal(await deleteBlock(target, victim), true)
    const deletedAt = new Date()
    const client = await readyBlockClient(target)
    try {
      await waitFor(
        'the copy is back',
        () => hasBlocks(client, [victim]),
        (h) => h[0] === true,
      )
      assert.equal(
        sha256(await getBlock(client, victim)),
        sha256(deterministicBytes(6 * 262_144 + 5, 'deleted-copy').subarray(2 * 262_144, 3 * 262_144)),
      )
    } finally {
      client.close()
    }
    const quiet = await waitForRepairQuiet(cluster.gatewayUrl, 3, deletedAt)
    assert.ok(quiet.repair.bytesRepaired >= 262_144, `bytesRepaired ${quiet.repair.bytesRepaired}`)
    assertHealthy(quiet, 3)
  })

  it('scrub finds a block corrupted on disk and rewrites it from a good copy', async () => {
    const size = 4 * 262_144
    const f = await upload(cluster, size, 'scrub-corrupt')
    const victim = (await leaves(addresses, f.cid))[1] as CID
    const key = hex(victim)
    const id = targetsOf(key, placementOf(await clusterStatus(cluster.gatewayUrl)))[0] as string
    const index = indexOf(cluster, id)
    const node = cluster.nodes[index]
    assert.ok(node)
    await node.stop()
    await corruptBlocksOnDisk(join(cluster.dataDir, `node-${index}`), [key])
    await node.start()
    const restartedAt = new Date()
    const status = await waitFor(
      'scrub repaired the copy',
      () => clusterStatus(cluster.gatewayUrl),
      (s) => (s.nodes.find((n) => n.id === id)?.scrub?.corruptRepaired ?? 0) >= 1,
    )
    assert.ok((member(status, id).scrub?.corruptFound ?? 0) >= 1)
    assert.ok(status.scrub.corruptRepaired >= 1)
    const client = await readyBlockClient(addresses[index] as string)
    try {
      const good = deterministicBytes(size, 'scrub-corrupt').subarray(262_144, 2 * 262_144)
      assert.equal(sha256(await getBlock(client, victim)), sha256(good), 'the node serves a good copy again')
    } finally {
      client.close()
    }
    await assertReadsBack(cluster, [f])
    assertHealthy(await waitForRepairQuiet(cluster.gatewayUrl, 3, restartedAt), 3)
  })
})

describe('a node killed (kill -9) during continuous uploads on 5 nodes', () => {
  let cluster: TestCluster
  after(async () => {
    await cluster?.destroy()
  })

  it('is declared dead, repair restores full redundancy on the live members, every acknowledged file reads back', async (t) => {
    cluster = await startCluster({ nodes: 5, env: FAST_REPAIR })
    const acknowledged: Uploaded[] = []
    let stop = false
    let attempts = 0
    const uploads = (async () => {
      for (let i = 0; !stop; i++) {
        attempts++
        // 100 kB to 1.5 MB, spread so the killed node holds megabytes from before the kill.
        const size = 100_000 + ((i * 797_003) % 1_400_000)
        const bytes = deterministicBytes(size, `continuous-${i}`)
        const res = await rawUpload(cluster.gatewayUrl, bytes).catch(() => undefined)
        if (res?.status === 201) acknowledged.push({ cid: res.body.cid as string, sha: sha256(bytes) })
      }
    })()
    let since = new Date()
    try {
      await waitFor(
        'some uploads before the kill',
        async () => acknowledged.length,
        (n) => n >= 8,
      )
      const killed = 2
      const live = [0, 1, 3, 4]
      await cluster.nodes[killed]?.kill()
      const atKill = acknowledged.length
      // Uploads go on while the node is suspect and until it is declared dead everywhere.
      const toDead = await everyoneSees(cluster, killed, ['dead'], live, DEAD_DEADLINE_MS)
      t.diagnostic(`dead on every member ${toDead} ms after kill -9`)
      await waitFor(
        'uploads continue without the node',
        async () => acknowledged.length,
        (n) => n >= atKill + 8,
      )
      since = new Date()
    } finally {
      stop = true
      await uploads
    }
    assert.ok(acknowledged.length >= 16, `${acknowledged.length} of ${attempts} uploads acknowledged`)

    const status = await waitForRepairQuiet(cluster.gatewayUrl, 4, since)
    t.diagnostic(
      `repair quiet ${Date.now() - since.getTime()} ms after that; ${status.repair.bytesRepaired} bytes repaired; ` +
        `${acknowledged.length} of ${attempts} uploads acknowledged`,
    )
    assert.ok(status.repair.bytesRepaired > 0, 'repair copied the dead node’s blocks')
    assertPlaced(await holdings(liveMembers(status)), placementOf(status))
    await assertReadsBack(cluster, acknowledged)
    assertHealthy(await clusterStatus(cluster.gatewayUrl), 4)
  })
})

describe('a node joins a running cluster, and a node that left gets its hinted copies back', () => {
  let cluster: TestCluster
  const files: Uploaded[] = []
  before(async () => {
    // Node 4 is started later; `left` must not turn into `dead` while a node is away here.
    cluster = await startCluster({
      nodes: 5,
      deferred: [4],
      env: { ...FAST_REPAIR, MYCEL_DEAD_AFTER_MS: '300000' },
    })
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('rebalances onto the new node: misplaced → 0, moved within 1.2× of the optimal share, all reads OK', async (t) => {
    const startedAt = new Date()
    for (let i = 0; i < 5; i++) files.push(await upload(cluster, 12 * 1024 * 1024 + i * 1000, `join-${i}`))
    const four = await waitForRepairQuiet(cluster.gatewayUrl, 4, startedAt)
    const before = await holdings(liveMembers(four))
    assertPlaced(before, placementOf(four))

    await cluster.nodes[4]?.start()
    await allAlive(cluster)
    // Every node knows the new member now: passes that start from here use the new placement.
    const joinedAt = new Date()
    // Uploads go on while the cluster rebalances.
    for (let i = 0; i < 3; i++) files.push(await upload(cluster, 3 * 1024 * 1024 + i, `join-during-${i}`))
    const five = await waitForRepairQuiet(cluster.gatewayUrl, 5, joinedAt)
    const afterJoin = await holdings(liveMembers(five))
    for (const key of before.keys()) assert.ok(afterJoin.has(key), `block ${key.slice(0, 16)}… kept`)
    const nodes = placementOf(five)
    assertPlaced(afterJoin, nodes)

    // Copies of the old blocks that now sit on a node that did not hold them before: what was moved.
    let moved = 0
    for (const [key, was] of before) for (const id of afterJoin.get(key) ?? []) if (!was.has(id)) moved++
    const joined = nodes.find((n) => n.id === cluster.nodeId(4))
    assert.ok(joined, 'the new node is placed')
    const optimal = idealCopies(joined, nodes, 3, before.size)
    const ratio = (moved / optimal).toFixed(3)
    assert.ok(moved <= 1.2 * optimal, `moved ${moved} copies; optimal ${optimal.toFixed(0)} (ratio ${ratio})`)
    t.diagnostic(
      `moved ${moved} copies of ${before.size} blocks; optimal ${optimal.toFixed(0)}; ratio ${ratio}`,
    )
    const onNew = [...before.keys()].filter((key) => afterJoin.get(key)?.has(joined.id)).length
    assert.equal(moved, onNew, 'copies only moved to the new node')
    await assertReadsBack(cluster, files)
    assertHealthy(await clusterStatus(cluster.gatewayUrl), 5)
  })

  it('SIGTERM: writes go to the next nodes (hinted); after the restart repair hands them back, misplaced → 0', async (t) => {
    const victim = 1
    const others = [0, 2, 3, 4]
    const victimId = cluster.nodeId(victim)
    const initial = await clusterStatus(cluster.gatewayUrl)
    const placement = placementOf(initial)
    // Handoffs counted by the nodes that stay up (a node's counters start at 0 when it starts).
    const handedOff = (s: ClusterStatus) =>
      others.reduce((sum, i) => sum + (member(s, cluster.nodeId(i)).repair?.blocksHandedOff ?? 0), 0)
    assert.equal(await cluster.nodes[victim]?.stop('SIGTERM'), 0)
    await everyoneSees(cluster, victim, ['left'], others, 30_000)

    const whileLeft: Uploaded[] = []
    for (let i = 0; i < 3; i++) whileLeft.push(await upload(cluster, 2 * 1024 * 1024 + i, `while-left-${i}`))
    files.push(...whileLeft)
    // The hinted copies are misplaced, and kept: their target is away, not gone.
    const left = await waitFor(
      'hinted copies reported misplaced',
      () => clusterStatus(cluster.gatewayUrl),
      (s) => s.misplaced > 0 && s.nodes.some((n) => n.id === victimId && n.state === 'left'),
    )
    const held = await holdings(liveMembers(left))
    let hinted = 0
    for (const [key, on] of held) {
      const targets = targetsOf(key, placement)
      if (targets.includes(victimId) && [...on].some((id) => !targets.includes(id))) hinted++
    }
    assert.ok(hinted > 0, 'some blocks written while the node was away sit on a node outside their targets')
    await assertReadsBack(cluster, whileLeft)

    await cluster.nodes[victim]?.start()
    await allAlive(cluster)
    const backAt = new Date()
    const status = await waitForRepairQuiet(cluster.gatewayUrl, 5, backAt)
    assert.deepEqual(placementOf(status), placement, 'placement is the same as before the stop')
    assertPlaced(await holdings(liveMembers(status)), placement)
    const back = handedOff(status) - handedOff(initial)
    t.diagnostic(
      `${hinted} blocks hinted, ${back} copies handed back; quiet ${Date.now() - backAt.getTime()} ms after the restart`,
    )
    assert.ok(back >= hinted, `handed off ${back} copies, ${hinted} blocks hinted`)
    await assertReadsBack(cluster, files)
    assertHealthy(await clusterStatus(cluster.gatewayUrl), 5)
  })
})

describe('zones: 6 nodes in 3 zones (R=3)', () => {
  let cluster: TestCluster
  let startedAt: Date
  const files: Uploaded[] = []
  const zoneOfNode = (i: number) => `zone-${Math.floor(i / 2)}`
  before(async () => {
    startedAt = new Date()
    cluster = await startCluster({
      nodes: 6,
      // Replicas across zones are what this suite checks: with 6 nodes the default would code
      // large blocks as ec:4+2 shards (tests/e2e/erasure.test.ts covers those).
      env: { ...FAST_REPAIR, MYCEL_DEFAULT_DURABILITY: 'replicate:3' },
      nodeEnv: (i) => ({ MYCEL_ZONE: zoneOfNode(i) }),
    })
  })
  after(async () => {
    await cluster?.destroy()
  })

  const zonesOf = (s: ClusterStatus, on: Set<string>) => new Set([...on].map((id) => member(s, id).zone))

  it('no block has two copies in one zone while 3 zones are live', async () => {
    for (let i = 0; i < 4; i++) files.push(await upload(cluster, 2 * 1024 * 1024 + i * 777, `zones-${i}`))
    const status = await waitForRepairQuiet(cluster.gatewayUrl, 6, startedAt)
    assert.deepEqual(new Set(status.nodes.map((n) => n.zone)), new Set(['zone-0', 'zone-1', 'zone-2']))
    const held = await holdings(liveMembers(status))
    assert.ok(held.size > 30, `${held.size} blocks`)
    assertPlaced(held, placementOf(status))
    for (const [key, on] of held)
      assert.equal(zonesOf(status, on).size, 3, `block ${key.slice(0, 16)}… zones`)
    assertHealthy(status, 6)
  })

  it('losing a whole zone (kill -9 both its nodes) loses no data; repair restores 3 copies on the 2 zones left', async (t) => {
    const lost = [4, 5]
    const live = [0, 1, 2, 3]
    await Promise.all(lost.map((i) => cluster.nodes[i]?.kill()))
    await assertReadsBack(cluster, files)
    for (const i of lost) await everyoneSees(cluster, i, ['dead'], live, DEAD_DEADLINE_MS)
    const deadAt = new Date()
    const status = await waitForRepairQuiet(cluster.gatewayUrl, 4, deadAt)
    t.diagnostic(`repair quiet ${Date.now() - deadAt.getTime()} ms after both were dead everywhere`)
    const held = await holdings(liveMembers(status))
    // Two zones left for three copies: the placement puts one in each, the third beside one of them.
    assertPlaced(held, placementOf(status))
    for (const [key, on] of held)
      assert.equal(zonesOf(status, on).size, 2, `block ${key.slice(0, 16)}… zones`)
    await assertReadsBack(cluster, files)
    assertHealthy(await clusterStatus(cluster.gatewayUrl), 4)
  })
})
