import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { ServiceProcess } from '@mycel/cli'
import { freePortRange, startCluster, TEST_TMP, type TestCluster } from '../helpers/cluster.js'
import { deterministicBytes, sha256, sha256OfResponse } from '../helpers/data.js'
import { membershipOf } from '../helpers/grpc.js'
import { rawUpload } from '../helpers/http.js'
import { allAlive, everyoneSees, stateIn, views } from '../helpers/membership.js'
import { poll } from '../helpers/poll.js'
import { assertHealthy, FAST_REPAIR, waitForRepairQuiet } from '../helpers/repair.js'

/**
 * Gossip membership with real node processes (local timings: probe every 1 s, a failed member is
 * suspect within a few seconds and dead MYCEL_DEAD_AFTER_MS = 15 s later; see ARCHITECTURE.md
 * "Membership"). Deadlines below are generous multiples of those timings: the machine is shared.
 * Each fault test ends with the status showing a healthy cluster once repair is quiet (repair
 * passes 2 s apart here, so that takes seconds).
 */

const DEAD_AFTER_MS = 15_000
/** Documented: a failed node is suspect within ≈ 1-3 s on an idle machine. */
const SUSPECT_DEADLINE_MS = 15_000
/** Documented: dead ≈ DEAD_AFTER_MS after the first suspicion. */
const DEAD_DEADLINE_MS = DEAD_AFTER_MS + 30_000
/** Documented failover time of a read: one RPC deadline (MYCEL_RPC_TIMEOUT_MS, 10 s). */
const FAILOVER_MS = 10_000

async function readSha(cluster: TestCluster, cid: string, timeoutMs = 30_000): Promise<string> {
  const res = await fetch(`${cluster.gatewayUrl}/ipfs/${cid}`, { signal: AbortSignal.timeout(timeoutMs) })
  if (res.status !== 200) throw new Error(`GET ${cid}: ${res.status} ${await res.text()}`)
  return (await sha256OfResponse(res)).hash
}

/**
 * Reads `cid` in a loop until stopped; records every failure and the longest time reads kept
 * failing (from the first failure to the next success).
 */
function readLoop(cluster: TestCluster, cid: string, expected: string) {
  let running = true
  const failures: string[] = []
  let reads = 0
  let longestFailureMs = 0
  let longestReadMs = 0
  let failingSince: number | undefined
  const done = (async () => {
    while (running) {
      const t = Date.now()
      try {
        const got = await readSha(cluster, cid, 20_000)
        if (got !== expected) throw new Error('wrong bytes')
        reads++
        if (failingSince !== undefined)
          longestFailureMs = Math.max(longestFailureMs, Date.now() - failingSince)
        failingSince = undefined
      } catch (err) {
        failures.push(`${new Date().toISOString()} ${String(err)}`)
        failingSince ??= t
      }
      longestReadMs = Math.max(longestReadMs, Date.now() - t)
      await sleep(50)
    }
    if (failingSince !== undefined) longestFailureMs = Math.max(longestFailureMs, Date.now() - failingSince)
  })()
  return {
    async stop() {
      running = false
      await done
      return { failures, reads, longestFailureMs, longestReadMs }
    },
  }
}

async function upload(
  cluster: TestCluster,
  size: number,
  seed: string,
): Promise<{ cid: string; sha: string }> {
  const bytes = deterministicBytes(size, seed)
  const up = await rawUpload(cluster.gatewayUrl, bytes)
  assert.equal(up.status, 201, up.text)
  return { cid: up.body.cid as string, sha: sha256(bytes) }
}

describe('membership: five nodes find each other and track failures (gossip, real processes)', () => {
  let cluster: TestCluster
  const files: Array<{ cid: string; sha: string }> = []
  before(async () => {
    cluster = await startCluster({ nodes: 5, env: FAST_REPAIR })
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('converges to 5 alive members on every node and on the gateway, and both are ready', async () => {
    const members = await allAlive(cluster)
    assert.deepEqual(
      new Set(members.map((m) => m.id)),
      new Set([0, 1, 2, 3, 4].map((i) => cluster.nodeId(i))),
    )
    for (const m of members) {
      assert.equal(typeof m.incarnation, 'number')
      assert.ok('zone' in m && 'host' in m && 'weight' in m && 'capacityBytes' in m && 'version' in m)
    }
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${cluster.adminUrl(i)}/readyz`)
      assert.equal(r.status, 200, await r.text())
    }
    assert.equal((await fetch(`${cluster.gatewayUrl}/readyz`)).status, 200)
    // Members can converge through the join sync before node 0's first probe round: wait for one.
    const metrics = await poll('node 0 to count a probe', 30_000, async () => {
      const text = await (await fetch(`${cluster.adminUrl(0)}/metrics`)).text()
      return /mycel_node_membership_probes_total [1-9]/.test(text) ? text : undefined
    })
    assert.match(metrics, /mycel_node_membership_members\{state="alive"\} 5/)
    files.push(await upload(cluster, 3 * 262_144 + 5, 'before-kill'))
  })

  it('kill -9: the node becomes suspect, then dead on every member; uploads and reads keep working', async () => {
    const victim = 4
    const others = [0, 1, 2, 3]
    await cluster.nodes[victim]!.kill()
    const killedAt = Date.now()
    let deadAt = new Date()
    let working = true
    const traffic = (async () => {
      let n = 0
      while (working) {
        const f = await upload(cluster, 300_000 + n, `during-kill-${n++}`)
        assert.equal(await readSha(cluster, f.cid), f.sha)
        files.push(f)
        await sleep(300)
      }
      return n
    })()
    try {
      const toSuspect = await everyoneSees(cluster, victim, ['suspect', 'dead'], others, SUSPECT_DEADLINE_MS)
      // The suspicion lasts DEAD_AFTER_MS, so it is seen as suspect before it is dead.
      const v = await views(cluster, others)
      assert.ok([...v.values()].some((ms) => stateIn(ms, cluster.nodeId(victim)) === 'suspect'))
      await everyoneSees(cluster, victim, ['dead'], others, DEAD_DEADLINE_MS)
      deadAt = new Date()
      const toDead = Date.now() - killedAt
      assert.ok(toDead >= DEAD_AFTER_MS, `dead after ${toDead} ms, not before the grace period`)
      process.stdout.write(
        `# kill -9: suspect on all after ${toSuspect} ms, dead on all after ${toDead} ms\n`,
      )
    } finally {
      working = false
    }
    assert.ok((await traffic) > 0)
    for (const f of files) assert.equal(await readSha(cluster, f.cid), f.sha)
    const gw = await cluster.members()
    assert.equal(gw.filter((m) => m.state === 'alive').length, 4)
    assertHealthy(await waitForRepairQuiet(cluster.gatewayUrl, 4, deadAt), 4)
  })

  it('a restarted node is alive again everywhere with a higher incarnation', async () => {
    const victim = 4
    const before = (await cluster.members()).find((m) => m.id === cluster.nodeId(victim))!
    assert.equal(before.state, 'dead')
    await cluster.nodes[victim]!.start()
    const members = await allAlive(cluster)
    const backAt = new Date()
    const after = members.find((m) => m.id === cluster.nodeId(victim))!
    assert.ok(after.incarnation > before.incarnation, `${after.incarnation} > ${before.incarnation}`)
    for (const f of files) assert.equal(await readSha(cluster, f.cid), f.sha)
    // Back in placement: repair moves its share of the data back to it.
    assertHealthy(await waitForRepairQuiet(cluster.gatewayUrl, 5, backAt), 5)
  })

  it('SIGTERM: the others and the gateway see the node left at once; reads do not wait for timeouts', async () => {
    const victim = 3
    const file = files[0]!
    const reader = readLoop(cluster, file.cid, file.sha)
    await sleep(500)
    const code = await cluster.nodes[victim]!.stop('SIGTERM')
    assert.equal(code, 0)
    const took = await everyoneSees(cluster, victim, ['left'], [0, 1, 2, 4], 10_000)
    process.stdout.write(`# SIGTERM: left seen by all ${took} ms after the process exited\n`)
    await sleep(2_000)
    const r = await reader.stop()
    assert.deepEqual(r.failures, [])
    assert.ok(r.reads > 0)
    assert.ok(r.longestReadMs < FAILOVER_MS / 2, `longest read ${r.longestReadMs} ms`)
    const uploaded = await upload(cluster, 700_000, 'while-left')
    assert.equal(await readSha(cluster, uploaded.cid), uploaded.sha)
    files.push(uploaded)
    await cluster.nodes[victim]!.start()
    await allAlive(cluster)
    // The copies written while it was away went to the next nodes; repair hands them back.
    assertHealthy(await waitForRepairQuiet(cluster.gatewayUrl, 5, new Date()), 5)
  })

  it('a rolling restart of every node keeps reads failing for less than the failover time', async () => {
    const file = files[0]!
    const reader = readLoop(cluster, file.cid, file.sha)
    for (let i = 0; i < cluster.nodes.length; i++) {
      await cluster.nodes[i]!.stop('SIGTERM')
      await cluster.nodes[i]!.start()
      await allAlive(cluster)
    }
    const restartedAt = new Date()
    const r = await reader.stop()
    process.stdout.write(
      `# rolling restart: ${r.reads} reads, ${r.failures.length} failed, longest failure window ${r.longestFailureMs} ms, longest read ${r.longestReadMs} ms\n`,
    )
    assert.ok(r.reads > 0)
    assert.ok(
      r.longestFailureMs < FAILOVER_MS,
      `longest failure window ${r.longestFailureMs} ms: ${r.failures.join('; ')}`,
    )
    for (const f of files) assert.equal(await readSha(cluster, f.cid), f.sha)
    assertHealthy(await waitForRepairQuiet(cluster.gatewayUrl, 5, restartedAt), 5)
  })
})

describe('membership: seeds from DNS', () => {
  let cluster: TestCluster
  after(async () => {
    await cluster?.destroy()
  })

  it('nodes and the gateway given only MYCEL_SEED_DNS=localhost:PORT find every node', async () => {
    const grpc = await freePortRange(3)
    const seed = `localhost:${grpc}`
    cluster = await startCluster({
      nodes: 3,
      ports: { grpc, admin: await freePortRange(3), gateway: await freePortRange(1), rpc: 'off' },
      nodeEnv: () => ({ MYCEL_PEERS: '', MYCEL_SEED_DNS: seed }),
      gatewayEnv: { MYCEL_PEERS: '', MYCEL_SEED_DNS: seed },
    })
    await allAlive(cluster)
    const f = await upload(cluster, 600_000, 'dns')
    assert.equal(await readSha(cluster, f.cid), f.sha)
  })
})

describe('membership: a network partition of one node (fault-injecting proxies)', () => {
  let cluster: TestCluster
  before(async () => {
    cluster = await startCluster({ nodes: 4, links: true, env: FAST_REPAIR })
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('both sides declare each other dead, then the partition heals into one cluster without loss', async () => {
    await allAlive(cluster)
    const before = await upload(cluster, 5 * 262_144, 'before-partition')
    // Cut off the node the gateway follows, so the gateway has to fail over as well.
    const followed = (
      (await (await fetch(`${cluster.gatewayUrl}/mycel/v1/status`)).json()) as {
        membership: { source: { nodeId: string } | null }
      }
    ).membership.source?.nodeId
    const victim = Math.max(
      0,
      [0, 1, 2, 3].findIndex((i) => cluster.nodeId(i) === followed),
    )
    const others = [0, 1, 2, 3].filter((i) => i !== victim)
    const incBefore = (await cluster.members()).find((m) => m.id === cluster.nodeId(victim))!.incarnation
    cluster.links[victim]!.cut()
    await everyoneSees(cluster, victim, ['dead'], others, DEAD_DEADLINE_MS + 15_000)
    // The cut-off node (asked on its real port, behind no proxy) declared the others dead too.
    await poll('the isolated node sees the others dead', DEAD_DEADLINE_MS, async () => {
      const v = await membershipOf(cluster.nodeAddress(victim))
      return v && others.every((i) => stateIn(v, cluster.nodeId(i)) === 'dead') ? true : undefined
    })
    const during = await upload(cluster, 4 * 262_144, 'during-partition')
    cluster.links[victim]!.restore()
    const members = await allAlive(cluster, 90_000)
    const healedAt = new Date()
    const incAfter = members.find((m) => m.id === cluster.nodeId(victim))!.incarnation
    assert.ok(incAfter > incBefore, `refuted its death: incarnation ${incAfter} > ${incBefore}`)
    for (const f of [before, during]) assert.equal(await readSha(cluster, f.cid), f.sha)
    const status = (await (await fetch(`${cluster.gatewayUrl}/mycel/v1/status`)).json()) as {
      nodesUp: number
      ready: boolean
    }
    assert.equal(status.nodesUp, 4)
    assert.equal(status.ready, true)
    // Copies written to the others meanwhile, and those it held while declared dead, are placed again.
    assertHealthy(await waitForRepairQuiet(cluster.gatewayUrl, 4, healedAt), 4)
  })
})

describe('membership: a node whose seeds do not answer', () => {
  it('is not ready while it joins, then starts alone after MYCEL_JOIN_TIMEOUT_MS', async () => {
    const dir = await mkdtemp(join(TEST_TMP, 'joining-'))
    const [grpc, admin, nowhere] = [await freePortRange(1), await freePortRange(1), await freePortRange(1)]
    const node = new ServiceProcess(
      'node-joining',
      'node',
      {
        MYCEL_DATA_DIR: join(dir, 'data'),
        MYCEL_GRPC_LISTEN: `127.0.0.1:${grpc}`,
        MYCEL_ADMIN_LISTEN: `127.0.0.1:${admin}`,
        MYCEL_PEERS: `127.0.0.1:${nowhere}`,
        MYCEL_JOIN_TIMEOUT_MS: '8000',
        MYCEL_LOG_LEVEL: 'warn',
      },
      join(dir, 'node.log'),
      60_000,
    )
    try {
      await node.start()
      const joining = await fetch(`http://127.0.0.1:${admin}/readyz`)
      assert.equal(joining.status, 503)
      assert.match(await joining.text(), /joining/)
      const self = (await membershipOf(`127.0.0.1:${grpc}`))?.[0]
      assert.equal(self?.state, 'joining')
      await poll('ready after the join timeout', 30_000, async () =>
        (await fetch(`http://127.0.0.1:${admin}/readyz`)).status === 200 ? true : undefined,
      )
      assert.equal((await membershipOf(`127.0.0.1:${grpc}`))?.[0]?.state, 'alive')
    } finally {
      await node.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
