import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import {
  blockKey,
  CID,
  createLogger,
  type DurabilityPolicy,
  isRoutable,
  type Member,
  type MemberState,
  type MembershipView,
  placeCopies,
  replicate,
} from '@mycel/core'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import type { BlockStore, NodeStateStore } from '../block-store/block-store.js'
import { MemoryBlockStore } from '../block-store/memory-block-store.js'
import { RocksBlockStore } from '../block-store/rocks-block-store.js'
import type { RepairPeers } from './peers.js'
import { RepairEngine, type RepairEngineConfig, type ShardWork } from './repair-engine.js'
import { Scrubber } from './scrubber.js'
import type { CodedBlock, ShardEvaluated } from './shard-repair.js'

const logger = createLogger('test', 'silent')

function block(bytes: Uint8Array = randomBytes(1000)): { cid: CID; bytes: Uint8Array } {
  const digest = createDigest(0x12, createHash('sha256').update(bytes).digest())
  return { cid: CID.createV1(raw.code, digest) as CID, bytes }
}

/** A membership a test changes by hand; listeners hear every change. */
class TestMembership implements MembershipView {
  private list: Member[]
  private readonly listeners = new Set<(m: readonly Member[]) => void>()

  constructor(ids: string[]) {
    this.list = ids.map((id) => ({
      id,
      address: id,
      zone: 'z',
      host: id,
      weight: 1,
      state: 'alive',
      incarnation: 0,
    }))
  }

  members(): readonly Member[] {
    return this.list
  }

  placementMembers(): readonly Member[] {
    return this.list.filter((m) => m.state !== 'dead' && m.state !== 'joining')
  }

  onChange(listener: (m: readonly Member[]) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  set(id: string, state: MemberState): void {
    this.list = this.list.map((m) => (m.id === id ? { ...m, state } : m))
    for (const l of this.listeners) l(this.list)
  }

  /** The member restarted (or refuted a suspicion): alive again with a higher incarnation. */
  restart(id: string): void {
    this.list = this.list.map((m) =>
      m.id === id ? { ...m, state: 'alive', incarnation: m.incarnation + 1 } : m,
    )
    for (const l of this.listeners) l(this.list)
  }

  add(id: string): void {
    this.list = [
      ...this.list,
      { id, address: id, zone: 'z', host: id, weight: 1, state: 'alive', incarnation: 0 },
    ]
    for (const l of this.listeners) l(this.list)
  }
}

type Store = BlockStore &
  NodeStateStore & { putUnverifiedForTesting?(cid: CID, bytes: Uint8Array): Promise<void> }

/** Nodes with in-memory stores, and peers that call straight into them (what gRPC would do). */
class FakeCluster {
  readonly stores = new Map<string, Store>()
  readonly membership: TestMembership
  readonly pushes: Array<{ from: string; to: string; key: string }> = []
  readonly hasCalls: Array<{ from: string; to: string; count: number }> = []
  /** Nodes whose RPCs fail (down, partitioned). */
  readonly unreachable = new Set<string>()
  /** Added to every HasBlocks call (a slow pass). */
  hasDelayMs = 0

  constructor(ids: string[]) {
    this.membership = new TestMembership(ids)
    for (const id of ids) this.stores.set(id, new MemoryBlockStore())
  }

  store(id: string): Store {
    let s = this.stores.get(id)
    if (s === undefined) {
      s = new MemoryBlockStore()
      this.stores.set(id, s)
    }
    return s
  }

  private reach(id: string): Store {
    if (this.unreachable.has(id)) throw new Error(`${id} unreachable`)
    return this.store(id)
  }

  peers(from: string): RepairPeers {
    return {
      has: async (m, cids) => {
        this.hasCalls.push({ from, to: m.id, count: cids.length })
        if (this.hasDelayMs > 0) await new Promise((r) => setTimeout(r, this.hasDelayMs))
        const records = await this.reach(m.id).records(cids)
        return records.map((r) =>
          r === undefined ? { held: false } : { held: true, policy: r.policy ?? replicate(3) },
        )
      },
      push: (m) => ({
        put: async (cid, bytes, policy) => {
          this.pushes.push({ from, to: m.id, key: Buffer.from(blockKey(cid)).toString('hex') })
          await this.reach(m.id).put(cid, Uint8Array.from(bytes), policy)
        },
        close: async () => {},
      }),
      get: async (m, cid) => {
        const store = this.reach(m.id)
        const data = await store.get(cid)
        const [r] = await store.records([cid])
        return r?.policy ? { data, policy: r.policy } : { data }
      },
    }
  }

  engine(
    id: string,
    cfg: Partial<RepairEngineConfig> = {},
    store: Store = this.store(id),
    shards?: ShardWork,
  ): RepairEngine {
    return new RepairEngine(
      {
        store,
        state: store,
        membership: this.membership,
        self: () => this.membership.members().find((m) => m.id === id),
        peers: this.peers(id),
        logger,
        ...(shards ? { shards } : {}),
      },
      { defaultPolicy: replicate(3), rateBytesPerSecond: 1e12, concurrency: 4, intervalMs: 60_000, ...cfg },
    )
  }

  targets(cid: CID, policy: DurabilityPolicy = replicate(3)): string[] {
    return placeCopies(blockKey(cid), this.membership.placementMembers(), policy.copies)
      .slice(0, policy.copies)
      .map((m) => m.id)
  }

  /** Stores `b` where placement wants it (what a gateway upload does). */
  async upload(b: { cid: CID; bytes: Uint8Array }, policy = replicate(3)): Promise<string[]> {
    const t = this.targets(b.cid, policy)
    for (const id of t) await this.store(id).put(b.cid, Uint8Array.from(b.bytes), policy)
    return t
  }

  async holders(cid: CID): Promise<string[]> {
    const out: string[] = []
    for (const [id, s] of this.stores) if ((await s.has([cid]))[0]) out.push(id)
    return out.sort()
  }

  /** One pass and a full drain on every routable node, in turn. */
  async round(
    ids = this.membership
      .members()
      .filter(isRoutable)
      .map((m) => m.id),
  ): Promise<void> {
    for (const id of ids) {
      const e = this.engine(id)
      await e.runPass()
      while (await e.drainOnce()) {}
    }
  }
}

describe('repair engine', () => {
  it('restores a missing copy, pushed by one holder only', async () => {
    const cluster = new FakeCluster(['n0', 'n1', 'n2', 'n3', 'n4'])
    const blocks = Array.from({ length: 20 }, () => block())
    for (const b of blocks) await cluster.upload(b)
    for (const b of blocks) await cluster.store(cluster.targets(b.cid)[1] as string).delete(b.cid)
    await cluster.round()
    for (const b of blocks) assert.deepEqual(await cluster.holders(b.cid), [...cluster.targets(b.cid)].sort())
    assert.equal(cluster.pushes.length, blocks.length, 'one push per missing copy')
    for (const p of cluster.pushes) {
      const b = blocks.find((x) => Buffer.from(blockKey(x.cid)).toString('hex') === p.key) as { cid: CID }
      assert.equal(p.from, cluster.targets(b.cid)[0], 'the first-ranked holder pushed')
    }
  })

  it('asks each target once per page, not once per block', async () => {
    const cluster = new FakeCluster(['n0', 'n1', 'n2', 'n3'])
    for (let i = 0; i < 100; i++) await cluster.upload(block())
    await cluster.engine('n0').runPass()
    const calls = cluster.hasCalls.filter((c) => c.from === 'n0')
    assert.ok(calls.length <= 3, `${calls.length} HasBlocks calls for one page`)
    assert.ok(calls.reduce((a, c) => a + c.count, 0) >= 100)
  })

  it('rebalances after a join: the new node gets its copies, old holders drop theirs only after', async () => {
    const cluster = new FakeCluster(['n0', 'n1', 'n2'])
    const blocks = Array.from({ length: 60 }, () => block())
    for (const b of blocks) await cluster.upload(b)
    cluster.membership.add('n3')
    // A few rounds: the responsible holder pushes, the misplaced holder drops its copy on a later pass.
    for (let i = 0; i < 3; i++) await cluster.round()
    for (const b of blocks) assert.deepEqual(await cluster.holders(b.cid), [...cluster.targets(b.cid)].sort())
    const moved = (await cluster.store('n3').list({ limit: 1000 })).length
    assert.equal(cluster.pushes.length, moved, 'each moved copy was sent once')
  })

  it('keeps a misplaced copy while a target has left, and hands it off when the target is back', async () => {
    const cluster = new FakeCluster(['n0', 'n1', 'n2', 'n3', 'n4'])
    const b = block()
    const targets = cluster.targets(b.cid)
    const away = targets[0] as string
    const hinted = ['n0', 'n1', 'n2', 'n3', 'n4'].find((id) => !targets.includes(id)) as string
    // Written while `away` was restarting: its copy went to the next node in rank order.
    for (const id of [...targets.slice(1), hinted])
      await cluster.store(id).put(b.cid, Uint8Array.from(b.bytes), replicate(3))
    cluster.membership.set(away, 'left')
    await cluster.round()
    assert.deepEqual(
      await cluster.holders(b.cid),
      [...targets.slice(1), hinted].sort(),
      'nothing moves while it is away',
    )
    assert.equal(cluster.pushes.length, 0, 'no copy for a member that left')
    cluster.membership.set(away, 'alive')
    for (let i = 0; i < 2; i++) await cluster.round()
    assert.deepEqual(await cluster.holders(b.cid), [...targets].sort(), 'the hinted copy went home')
  })

  it('re-replicates the copies of a member declared dead', async () => {
    const cluster = new FakeCluster(['n0', 'n1', 'n2', 'n3', 'n4'])
    const blocks = Array.from({ length: 30 }, () => block())
    for (const b of blocks) await cluster.upload(b)
    cluster.unreachable.add('n2')
    cluster.membership.set('n2', 'dead')
    await cluster.round()
    for (const b of blocks) {
      const live = (await cluster.holders(b.cid)).filter((id) => id !== 'n2')
      assert.deepEqual(live, [...cluster.targets(b.cid)].sort())
    }
  })

  it('never drops the last copy: a misplaced only copy is pushed first, and kept while targets cannot confirm', async () => {
    const cluster = new FakeCluster(['n0', 'n1', 'n2', 'n3'])
    const b = block()
    const targets = cluster.targets(b.cid)
    const holder = ['n0', 'n1', 'n2', 'n3'].find((id) => !targets.includes(id)) as string
    await cluster.store(holder).put(b.cid, Uint8Array.from(b.bytes), replicate(3))
    for (const t of targets) cluster.unreachable.add(t)
    await cluster.round([holder])
    assert.deepEqual(await cluster.holders(b.cid), [holder], 'kept while no target answers')
    cluster.unreachable.clear()
    await cluster.round([holder])
    assert.deepEqual(await cluster.holders(b.cid), [...targets].sort(), 'pushed to all, then dropped')
  })

  it('repairs the blocks with the fewest surviving copies first', async () => {
    const cluster = new FakeCluster(['n0', 'n1', 'n2', 'n3', 'n4'])
    const twoLeft = Array.from({ length: 10 }, () => block())
    const oneLeft = Array.from({ length: 10 }, () => block())
    // n0 is the first holder of all of them; some lost one copy, some two.
    const onN0 = (b: { cid: CID }) => cluster.targets(b.cid)[0] === 'n0'
    const pool = Array.from({ length: 400 }, () => block()).filter(onN0)
    twoLeft.splice(0, 10, ...pool.slice(0, 10))
    oneLeft.splice(0, 10, ...pool.slice(10, 20))
    for (const b of [...twoLeft, ...oneLeft]) await cluster.upload(b)
    for (const b of twoLeft) await cluster.store(cluster.targets(b.cid)[2] as string).delete(b.cid)
    for (const b of oneLeft) {
      for (const id of cluster.targets(b.cid).slice(1)) await cluster.store(id).delete(b.cid)
    }
    const engine = cluster.engine('n0', { drainBatch: 5 })
    await engine.runPass()
    while (await engine.drainOnce()) {}
    const order = cluster.pushes.map((p) => p.key)
    const rank = (b: { cid: CID }) => order.indexOf(Buffer.from(blockKey(b.cid)).toString('hex'))
    const lastOfOne = Math.max(...oneLeft.map(rank))
    const firstOfTwo = Math.min(...twoLeft.map(rank))
    assert.ok(lastOfOne < firstOfTwo, 'every block with one copy left went before those with two')
  })

  it('pushes at most MYCEL_REPAIR_RATE_BYTES per second', async () => {
    const cluster = new FakeCluster(['n0', 'n1', 'n2'])
    // Blocks n0 is responsible for, each missing one copy: 1 MB to push. (Drawn until there are
    // 10: a fixed 60 draws held fewer once in a few hundred runs.)
    const blocks: Array<{ cid: CID; bytes: Uint8Array }> = []
    while (blocks.length < 10) {
      const b = block(randomBytes(100_000))
      if (cluster.targets(b.cid)[0] === 'n0') blocks.push(b)
    }
    for (const b of blocks) await cluster.upload(b)
    for (const b of blocks) await cluster.store(cluster.targets(b.cid)[2] as string).delete(b.cid)
    const e = cluster.engine('n0', { rateBytesPerSecond: 400_000 })
    await e.runPass()
    const started = performance.now()
    while (await e.drainOnce()) {}
    const seconds = (performance.now() - started) / 1000
    // One second of burst (400 kB), then 600 kB at 400 kB/s.
    assert.ok(seconds >= 1.3, `pushed 1 MB in ${seconds.toFixed(2)} s`)
    assert.equal(cluster.pushes.length, 10)
    assert.equal(e.status().bytesRepaired, 1_000_000)
  })

  it('adopts the stronger durability record of another holder and widens the placement', async () => {
    const cluster = new FakeCluster(['n0', 'n1', 'n2', 'n3', 'n4'])
    const b = block()
    const t4 = cluster.targets(b.cid, replicate(4))
    await cluster.store(t4[0] as string).put(b.cid, Uint8Array.from(b.bytes), replicate(2))
    await cluster.store(t4[1] as string).put(b.cid, Uint8Array.from(b.bytes), replicate(4))
    for (let i = 0; i < 2; i++) await cluster.round()
    assert.deepEqual(await cluster.holders(b.cid), [...t4].sort())
    for (const id of t4) assert.deepEqual((await cluster.store(id).records([b.cid]))[0]?.policy, replicate(4))
  })

  it('counts each under-replicated block once, on its responsible holder', async () => {
    const cluster = new FakeCluster(['n0', 'n1', 'n2', 'n3'])
    const blocks = Array.from({ length: 40 }, () => block())
    for (const b of blocks) await cluster.upload(b)
    for (const b of blocks) await cluster.store(cluster.targets(b.cid)[2] as string).delete(b.cid)
    let under = 0
    let scanned = 0
    for (const id of ['n0', 'n1', 'n2', 'n3']) {
      const e = cluster.engine(id)
      await e.runPass()
      under += e.status().lastPass?.underReplicated ?? 0
      scanned += e.status().lastPass?.scanned ?? 0
    }
    assert.equal(under, 40)
    assert.equal(scanned, 80, 'every copy examined by its holder')
  })

  it('restarts its pass when membership changes, and repairs on a trigger without waiting the interval', async () => {
    const cluster = new FakeCluster(['n0', 'n1', 'n2', 'n3'])
    const blocks = Array.from({ length: 20 }, () => block())
    for (const b of blocks) await cluster.upload(b)
    const engines = ['n0', 'n1', 'n2', 'n3'].map((id) =>
      cluster.engine(id, { intervalMs: 3_600_000, debounceMs: 10, rerunDelayMs: 20 }),
    )
    for (const e of engines) await e.start()
    try {
      await waitFor(() => engines.every((e) => e.status().lastPass !== undefined))
      cluster.unreachable.add('n1')
      cluster.membership.set('n1', 'dead')
      await waitFor(async () => {
        for (const b of blocks) {
          const live = (await cluster.holders(b.cid)).filter((id) => id !== 'n1')
          if (live.length < 3) return false
        }
        return true
      })
    } finally {
      for (const e of engines) await e.stop()
    }
  })

  it('takes hinted copies home soon after a member restarts without leaving (higher incarnation)', async () => {
    const ids = ['n0', 'n1', 'n2', 'n3', 'n4']
    const cluster = new FakeCluster(ids)
    const engines = ids.map((id) =>
      cluster.engine(id, { intervalMs: 3_600_000, debounceMs: 10, rerunDelayMs: 20 }),
    )
    for (const e of engines) await e.start()
    try {
      await waitFor(() => engines.every((e) => e.status().lastPass !== undefined))
      // Written while `away` had crashed and was not yet suspected (a force-deleted pod back in
      // seconds): its copy went to the next node in rank order. Every pass is done and the
      // interval is an hour: only the membership change can bring the copy home.
      const b = block()
      const targets = cluster.targets(b.cid)
      const away = targets[0] as string
      const hinted = ids.find((id) => !targets.includes(id)) as string
      for (const id of [...targets.slice(1), hinted])
        await cluster.store(id).put(b.cid, Uint8Array.from(b.bytes), replicate(3))
      cluster.membership.set(away, 'suspect')
      cluster.membership.restart(away)
      await waitFor(async () => (await cluster.holders(b.cid)).join() === [...targets].sort().join())
    } finally {
      for (const e of engines) await e.stop()
    }
  })

  it('a member coming back does not restart a running pass; a second pass follows it', async () => {
    const cluster = new FakeCluster(['n0', 'n1', 'n2'])
    for (let i = 0; i < 60; i++) await cluster.upload(block())
    cluster.hasDelayMs = 20 // 12 pages: a pass of about half a second
    const engine = cluster.engine('n0', {
      intervalMs: 3_600_000,
      debounceMs: 10,
      rerunDelayMs: 20,
      scanBatch: 5,
    })
    await engine.start()
    try {
      await waitFor(() => engine.status().pass !== undefined)
      const started = engine.status().pass?.startedAt
      // Suspicions that come and go (refuted with higher incarnations) while the pass runs.
      for (let i = 0; i < 5; i++) {
        cluster.membership.set('n1', 'suspect')
        cluster.membership.restart('n1')
        await new Promise((r) => setTimeout(r, 15))
      }
      await waitFor(() => engine.status().lastPass?.startedAt === started, 10_000)
      assert.equal(engine.status().lastPass?.scanned, 60, 'the pass ran to its end')
      await waitFor(() => (engine.status().lastPass?.startedAt ?? 0) > (started ?? 0), 10_000)
    } finally {
      await engine.stop()
    }
  })

  it('looks again soon after a pass that could not reach a target, not after the whole interval', async () => {
    const cluster = new FakeCluster(['n0', 'n1', 'n2'])
    // Every node holds every block; n0 is responsible for about a third of them.
    for (let i = 0; i < 40; i++) await cluster.upload(block())
    cluster.unreachable.add('n2')
    const engine = cluster.engine('n0', { intervalMs: 3_600_000, debounceMs: 10, rerunDelayMs: 20 })
    await engine.start()
    try {
      await waitFor(() => (engine.status().lastPass?.unavailable ?? 0) > 0)
      // n2 answers again without any membership change (it never left the view).
      cluster.unreachable.delete('n2')
      await waitFor(() => engine.status().lastPass?.unavailable === 0)
    } finally {
      await engine.stop()
    }
  })
})

describe('repair engine on RocksDB', () => {
  const dirs: string[] = []
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true })
  })

  it('resumes an interrupted pass from its persisted cursor after a restart', async () => {
    const path = await mkdtemp(join(tmpdir(), 'mycel-repair-'))
    dirs.push(path)
    const open = () => RocksBlockStore.open({ path, syncWrites: true, logger })
    const cluster = new FakeCluster(['n0', 'n1', 'n2'])
    let store = await open()
    cluster.stores.set('n0', store)
    const blocks = Array.from({ length: 12 }, () => block())
    for (const b of blocks) await cluster.upload(b)
    // The second HasBlocks round hangs until the engine has been told to stop.
    let release: () => void = () => {}
    const gate = new Promise<void>((r) => {
      release = r
    })
    let rounds = 0
    const peers = cluster.peers('n0')
    const slowHas: RepairPeers['has'] = async (m, cids) => {
      if (++rounds === 3) await gate
      return peers.has(m, cids)
    }
    const engine = new RepairEngine(
      {
        store,
        state: store,
        membership: cluster.membership,
        self: () => cluster.membership.members()[0],
        peers: { ...peers, has: slowHas },
        logger,
      },
      {
        defaultPolicy: replicate(3),
        rateBytesPerSecond: 1e12,
        concurrency: 2,
        intervalMs: 3_600_000,
        scanBatch: 4,
      },
    )
    await engine.start()
    await waitFor(() => rounds >= 3)
    const stopping = engine.stop()
    release()
    await stopping
    const scannedBefore = engine.status().pass?.scanned ?? 0
    assert.ok(scannedBefore >= 4 && scannedBefore < 12, `stopped mid-pass (${scannedBefore} scanned)`)
    await store.close()
    store = await open()
    cluster.stores.set('n0', store)
    const again = cluster.engine('n0', { scanBatch: 4 }, store)
    const hasBefore = cluster.hasCalls.length
    assert.equal(await again.runPass(), 'completed')
    assert.equal(again.status().lastPass?.scanned, 12, 'the resumed pass counts the whole node once')
    assert.ok(
      cluster.hasCalls.length - hasBefore <= 2 * Math.ceil((12 - scannedBefore) / 4),
      'earlier pages not re-read',
    )
    await store.close()
  })

  it('scrub finds a corrupt copy, drops it and rewrites it from a good holder', async () => {
    const path = await mkdtemp(join(tmpdir(), 'mycel-scrub-'))
    dirs.push(path)
    const store = await RocksBlockStore.open({ path, syncWrites: true, logger })
    const cluster = new FakeCluster(['n0', 'n1', 'n2'])
    cluster.stores.set('n0', store)
    const blocks = Array.from({ length: 10 }, () => block())
    for (const b of blocks) await cluster.upload(b, replicate(3))
    const bad = blocks[3] as { cid: CID; bytes: Uint8Array }
    await store.putUnverifiedForTesting(bad.cid, randomBytes(1000))
    const scrubber = new Scrubber(
      {
        store,
        state: store,
        membership: cluster.membership,
        self: () => cluster.membership.members()[0],
        peers: cluster.peers('n0'),
        logger,
      },
      { defaultPolicy: replicate(3), rateBytesPerSecond: 1e9, intervalMs: 3_600_000 },
    )
    await scrubber.runPass()
    assert.equal(scrubber.status().corruptFound, 1)
    assert.equal(scrubber.status().corruptRepaired, 1)
    assert.deepEqual(Buffer.from(await store.get(bad.cid)), Buffer.from(bad.bytes))
    assert.deepEqual((await store.records([bad.cid]))[0]?.policy, replicate(3), 'the record came back too')
    await store.close()
  })
})

/**
 * Coded blocks "held" by one node, with fixed decisions: which need a rebuild (missing shards,
 * this node responsible) and which are healthy; act() records what it was asked to do.
 */
class FakeShards implements ShardWork {
  readonly pages: Array<string | undefined> = []
  readonly acted: string[] = []
  onPage: () => void = () => {}

  constructor(
    readonly blocks: CodedBlock[],
    readonly broken: Set<string>,
  ) {}

  async page(after: Buffer | undefined, limit: number) {
    this.pages.push(after?.toString('hex'))
    this.onPage()
    const from = after === undefined ? 0 : this.blocks.findIndex((b) => Buffer.from(b.key).equals(after)) + 1
    const blocks = this.blocks.slice(from, from + limit)
    const last = blocks.at(-1)
    return last === undefined ? { blocks } : { blocks, last: Buffer.from(last.key) }
  }

  async evaluate(blocks: readonly CodedBlock[]): Promise<ShardEvaluated[]> {
    return blocks.map((block) => {
      const broken = this.broken.has(block.cid.toString())
      return {
        block,
        owners: [],
        listings: [],
        decision: {
          role: 'owner',
          missing: broken ? [2] : [],
          unknown: [],
          responsible: true,
          handOff: [],
          waiting: [],
          found: broken ? 5 : 6,
          unrecoverable: false,
          copies: broken ? 2 : 3,
        },
      }
    })
  }

  async act(
    evaluated: readonly ShardEvaluated[],
    _self: Member,
    o: { throttle: (n: number) => Promise<void> },
  ) {
    let rebuilt = 0
    for (const e of evaluated) {
      if (e.decision.missing.length === 0) continue
      await o.throttle(1000)
      this.acted.push(e.block.cid.toString())
      this.broken.delete(e.block.cid.toString())
      rebuilt++
    }
    return { rebuilt, handedOff: 0, bytes: rebuilt * 1000 }
  }
}

describe('repair engine: erasure-coded shards', () => {
  const coded = (): CodedBlock => {
    const { cid } = block()
    return { cid, key: blockKey(cid), k: 4, m: 2 }
  }

  it('a pass continues over the coded blocks; those missing shards join the queue and the drain rebuilds them', async () => {
    const cluster = new FakeCluster(['n0', 'n1', 'n2'])
    await cluster.upload(block())
    const blocks = Array.from({ length: 5 }, coded).sort((a, b) => Buffer.compare(a.key, b.key))
    const shards = new FakeShards(
      blocks,
      new Set([blocks[1]?.cid.toString(), blocks[4]?.cid.toString()] as string[]),
    )
    const store = cluster.store('n0')
    const engine = cluster.engine('n0', { scanBatch: 2 }, store, shards)
    assert.equal(await engine.runPass(), 'completed')
    const pass = engine.status().lastPass
    assert.equal(pass?.scanned, 1, 'the blocks first')
    assert.equal(pass?.shardBlocks, 5)
    assert.equal(pass?.shardsMissing, 2)
    assert.equal(pass?.enqueued, 2)
    assert.equal(store.repairQueueLength(), 2)
    const [first] = await store.nextRepairs(undefined, 1)
    assert.deepEqual(first?.code, { k: 4, m: 2 }, 'queued as coded blocks, in the one queue')
    while (await engine.drainOnce()) {}
    assert.deepEqual(shards.acted.sort(), [blocks[1]?.cid.toString(), blocks[4]?.cid.toString()].sort())
    assert.equal(engine.status().shardsRebuilt, 2)
    assert.equal(engine.status().bytesRepaired, 0, 'shard bytes are not counted as copies')
    assert.equal(store.repairQueueLength(), 0)
  })

  it('resumes the shard scan from its persisted cursor after a restart', async () => {
    const cluster = new FakeCluster(['n0', 'n1', 'n2'])
    const blocks = Array.from({ length: 6 }, coded).sort((a, b) => Buffer.compare(a.key, b.key))
    const make = (shards: FakeShards) => cluster.engine('n0', { scanBatch: 2 }, cluster.store('n0'), shards)
    const before = new FakeShards(blocks, new Set())
    const stopping = make(before)
    before.onPage = () => {
      if (before.pages.length === 2) void stopping.stop()
    }
    assert.equal(await stopping.runPass(), 'stopped')
    const after = new FakeShards(blocks, new Set())
    assert.equal(await make(after).runPass(), 'completed')
    assert.equal(
      after.pages[0],
      Buffer.from(blocks[3]?.key as Uint8Array).toString('hex'),
      'continues after the 2nd page',
    )
  })
})

async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > until) throw new Error('condition not reached in time')
    await new Promise((r) => setTimeout(r, 10))
  }
}
