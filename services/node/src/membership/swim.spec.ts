import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { MemberState } from '@mycel/core'
import { SimNetwork } from './simulated-network.js'
import type { SwimConfig } from './swim.js'

const FAST: Partial<SwimConfig> = {
  probeIntervalMs: 1_000,
  probeTimeoutMs: 300,
  indirectProbes: 3,
  deadAfterMs: 15_000,
  syncIntervalMs: 5_000,
  syncTimeoutMs: 1_000,
  joinRetryMs: 1_000,
  tombstoneMs: 3_600_000,
}

const ids = (n: number) => Array.from({ length: n }, (_, i) => `n${i}`)

/** Starts `n` nodes, all seeded with n0's address, and waits until every one sees all alive. */
async function converged(n: number, config: Partial<SwimConfig> = FAST, seed = 1): Promise<SimNetwork> {
  const net = new SimNetwork(config, seed)
  for (const id of ids(n)) {
    net.add({ id, seeds: [SimNetwork.address('n0')] })
    await net.clock.advance(50)
  }
  await net.clock.until(() => allSee(net, ids(n), 'alive'), 60_000)
  return net
}

/** Every live node sees each of `who` in `state`. */
function allSee(net: SimNetwork, who: string[], state: MemberState, observers = net.live): boolean {
  return observers.every((o) => who.every((id) => o.members().find((m) => m.id === id)?.state === state))
}

describe('SWIM membership (simulated network, virtual time)', () => {
  it('a node with no seeds besides itself is alive at once; others join through it', async () => {
    const net = new SimNetwork(FAST)
    const a = net.add({ id: 'n0', seeds: [SimNetwork.address('n0')] })
    await net.clock.advance(10)
    assert.equal(a.self.state, 'alive')
    const b = net.add({ id: 'n1', seeds: [SimNetwork.address('n0')] })
    assert.equal(b.self.state, 'joining')
    await net.clock.until(() => b.joined, 5_000)
    await net.clock.until(() => allSee(net, ['n0', 'n1'], 'alive'), 5_000)
  })

  it('a node whose seeds do not answer stays joining and retries until one does', async () => {
    const net = new SimNetwork({ ...FAST, joinTimeoutMs: 60_000 })
    const b = net.add({ id: 'n1', seeds: [SimNetwork.address('n0')] })
    await net.clock.advance(10_000)
    assert.equal(b.self.state, 'joining')
    net.add({ id: 'n0', seeds: [SimNetwork.address('n1')] })
    await net.clock.until(() => allSee(net, ['n0', 'n1'], 'alive'), 5_000)
  })

  it('after the join timeout a node starts alone, and merges with its seed once that appears', async () => {
    const net = new SimNetwork({ ...FAST, joinTimeoutMs: 5_000 })
    const a = net.add({ id: 'n0', seeds: [SimNetwork.address('n1')] })
    await net.clock.advance(4_000)
    assert.equal(a.self.state, 'joining')
    await net.clock.advance(2_000)
    assert.equal(a.self.state, 'alive')
    // n1 starts on its own too (no seeds), apart from n0: the seed reconnect merges them.
    net.add({ id: 'n1', seeds: [] })
    await net.clock.until(() => allSee(net, ['n0', 'n1'], 'alive'), 4 * FAST.syncIntervalMs!)
  })

  it('dissemination by piggybacking alone reaches all of 20 members', async () => {
    // No anti-entropy rounds: every node only syncs once with the seed (n0) to join, so what the
    // others learn about each other and about a departure travels on pings and acks.
    const net = await converged(20, { ...FAST, syncIntervalMs: 10_000_000 })
    const before = net.clock.now()
    const leaving = net.node('n7').leave()
    await net.clock.advance(1_000)
    await leaving
    const took = await net.clock.until(
      () =>
        allSee(
          net,
          ['n7'],
          'left',
          net.live.filter((s) => s.self.id !== 'n7'),
        ),
      30_000,
    )
    assert.ok(took < 15_000, `left reached everyone in ${took} ms`)
    assert.ok(net.clock.now() >= before)
  })

  it('a member that misses probes is suspected, refutes with a higher incarnation and stays alive', async () => {
    const net = await converged(5)
    const before = net.view('n0', 'n3')?.incarnation ?? 0
    net.partition('n3', true)
    await net.clock.until(() => net.view('n0', 'n3')?.state === 'suspect', 20_000)
    assert.ok(net.counters.suspicions > 0)
    net.partition('n3', false)
    await net.clock.until(() => allSee(net, ids(5), 'alive'), 20_000)
    for (const s of net.live) {
      const rec = s.members().find((m) => m.id === 'n3')
      assert.ok(rec !== undefined && rec.incarnation > before, `${s.self.id} sees n3 at a higher incarnation`)
    }
    assert.ok(net.counters.refuted > 0, 'the suspect refuted')
  })

  it('indirect probes keep a member alive when only the prober cannot reach it', async () => {
    const net = await converged(5)
    const before = net.counters.suspicions
    net.cutLink('n0', 'n1', true)
    await net.clock.advance(30_000)
    assert.equal(net.counters.suspicions, before, 'no suspicion raised')
    assert.ok(allSee(net, ids(5), 'alive'))
    assert.ok(net.counters.probeFailures > 0, 'direct probes across the cut link failed')
  })

  it('a crashed member is suspect within a few protocol periods, then dead after deadAfterMs, not before', async () => {
    const net = await converged(5)
    net.crash('n2')
    const others = ids(5).filter((id) => id !== 'n2')
    const toSuspect = await net.clock.until(
      () => others.every((o) => net.view(o, 'n2')?.state !== 'alive'),
      20_000,
    )
    assert.ok(toSuspect <= 10_000, `suspected by all in ${toSuspect} ms`)
    assert.ok(allSee(net, ['n2'], 'suspect'), 'suspect, not yet dead')
    await net.clock.advance(FAST.deadAfterMs! - toSuspect - 2_000)
    assert.ok(
      net.live.every((s) => s.members().find((m) => m.id === 'n2')?.state !== 'dead'),
      'nobody declares it dead before deadAfterMs from its first suspicion',
    )
    await net.clock.until(() => allSee(net, ['n2'], 'dead'), 10_000)
    assert.ok(net.counters.deadDeclared > 0)
    // Dead members leave placement but stay in the table (tombstone).
    assert.ok(
      !net
        .node('n0')
        .placementMembers()
        .some((m) => m.id === 'n2'),
    )
    assert.ok(
      net
        .node('n0')
        .members()
        .some((m) => m.id === 'n2'),
    )
  })

  it('a dead member that restarts rejoins with a higher incarnation and is alive again', async () => {
    const net = await converged(5)
    net.crash('n2')
    await net.clock.until(() => allSee(net, ['n2'], 'dead'), 60_000)
    const deadInc = net.view('n0', 'n2')?.incarnation ?? 0
    // A restart whose persisted incarnation is behind what the cluster saw (it refuted meanwhile):
    // it learns its death from the seed and rises above it.
    const back = net.add({ id: 'n2', seeds: [SimNetwork.address('n0')], incarnation: 1 })
    await net.clock.until(() => allSee(net, ids(5), 'alive'), 20_000)
    assert.ok(back.self.incarnation > deadInc, `${back.self.incarnation} > ${deadInc}`)
    for (const s of net.live)
      assert.equal(s.members().find((m) => m.id === 'n2')?.incarnation, back.self.incarnation)
  })

  it('stale gossip does not resurrect a dead member; tombstones expire', async () => {
    const net = await converged(4, { ...FAST, tombstoneMs: 120_000 })
    net.crash('n3')
    await net.clock.until(() => allSee(net, ['n3'], 'dead'), 60_000)
    const dead = net.view('n0', 'n3')!
    // Old news arriving late: alive at the same and at an older incarnation.
    for (const inc of [dead.incarnation, dead.incarnation - 1]) {
      net.node('n1').handlePing({
        fromId: 'n0',
        targetId: 'n1',
        updates: [{ ...dead, state: 'alive', incarnation: inc }],
      })
      net.node('n2').handleSync({ fromId: 'n0', members: [{ ...dead, state: 'suspect', incarnation: inc }] })
    }
    await net.clock.advance(10_000)
    assert.ok(allSee(net, ['n3'], 'dead'), 'still dead everywhere')
    // After the tombstone period the record is gone, and a late dead record does not bring it back.
    await net.clock.advance(200_000)
    assert.ok(net.live.every((s) => !s.members().some((m) => m.id === 'n3')))
    net.node('n1').handlePing({ fromId: 'n0', targetId: 'n1', updates: [dead] })
    assert.ok(
      !net
        .node('n1')
        .members()
        .some((m) => m.id === 'n3'),
    )
  })

  it('a graceful leave is seen at once as left, then dead after deadAfterMs', async () => {
    const net = await converged(5)
    const leaving = net.node('n4')
    const inc = leaving.self.incarnation
    const left = leaving.leave()
    await net.clock.advance(100)
    await left
    net.crash('n4')
    assert.ok(allSee(net, ['n4'], 'left'), 'every member was told directly')
    assert.equal(net.view('n0', 'n4')?.incarnation, inc + 1, 'leaving raises the incarnation')
    // Left members stay placed (their data is expected back) but are not routed to.
    assert.ok(
      net
        .node('n0')
        .placementMembers()
        .some((m) => m.id === 'n4'),
    )
    await net.clock.advance(FAST.deadAfterMs! - 1_000)
    assert.ok(allSee(net, ['n4'], 'left'))
    await net.clock.until(() => allSee(net, ['n4'], 'dead'), 5_000)
  })

  it('a partition long enough for both sides to declare each other dead heals into one alive cluster', async () => {
    const net = await converged(5)
    net.partition('n1', true)
    const others = net.live.filter((s) => s.self.id !== 'n1')
    await net.clock.until(
      () =>
        allSee(net, ['n1'], 'dead', others) &&
        allSee(net, ['n0', 'n2', 'n3', 'n4'], 'dead', [net.node('n1')]),
      60_000,
    )
    net.partition('n1', false)
    const took = await net.clock.until(() => allSee(net, ids(5), 'alive'), 60_000)
    assert.ok(took <= 4 * FAST.syncIntervalMs!, `healed in ${took} ms`)
  })

  it('a member is only ever raised in incarnation by itself', async () => {
    const net = await converged(5)
    const incs = new Map(
      net
        .node('n0')
        .members()
        .map((m) => [m.id, m.incarnation]),
    )
    net.partition('n2', true)
    await net.clock.advance(8_000)
    // While cut off, others may suspect n2 but none can raise its incarnation.
    for (const s of net.live.filter((x) => x.self.id !== 'n2')) {
      assert.equal(s.members().find((m) => m.id === 'n2')?.incarnation, incs.get('n2'))
    }
    net.partition('n2', false)
    await net.clock.until(() => allSee(net, ids(5), 'alive'), 30_000)
  })
})
