import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { blockKey, CID, createLogger, MAX_BLOCK_BYTES, replicate } from '@mycel/core'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import type { BlockStore, NodeStateStore, WriteBatchReport } from './block-store.js'
import { MemoryBlockStore } from './memory-block-store.js'
import { RocksBlockStore } from './rocks-block-store.js'

function rawBlock(bytes: Uint8Array): { cid: CID; bytes: Uint8Array } {
  const digest = createDigest(0x12, createHash('sha256').update(bytes).digest())
  return { cid: CID.createV1(raw.code, digest) as CID, bytes }
}

type TestStore = BlockStore &
  NodeStateStore & { putUnverifiedForTesting(cid: CID, bytes: Uint8Array): Promise<void> }

/** One compliance suite, run against every BlockStore implementation. */
function compliance(
  name: string,
  open: () => Promise<{ store: TestStore; reopen?: () => Promise<TestStore> }>,
) {
  describe(`BlockStore compliance: ${name}`, () => {
    // put() may take ownership of the bytes it is given (RocksBlockStore moves them to its writer
    // thread), so the tests hand over copies and keep the originals to compare with.
    it('round-trips blocks and counts them once', async () => {
      const { store } = await open()
      const a = rawBlock(randomBytes(1000))
      const b = rawBlock(randomBytes(2000))
      await Promise.all([
        store.put(a.cid, Uint8Array.from(a.bytes)),
        store.put(b.cid, Uint8Array.from(b.bytes)),
        store.put(a.cid, Uint8Array.from(a.bytes)),
      ])
      assert.deepEqual(Buffer.from(await store.get(a.cid)), Buffer.from(a.bytes))
      assert.deepEqual(await store.has([a.cid, b.cid, rawBlock(randomBytes(10)).cid]), [true, true, false])
      assert.deepEqual(store.stats(), { blocks: 2, bytes: 3000 })
      await store.close()
    })

    it('shares one copy between CIDv0-style and CIDv1 addresses of the same multihash', async () => {
      const { store } = await open()
      const a = rawBlock(randomBytes(64))
      const asDagPb = CID.createV1(0x70, a.cid.multihash)
      await store.put(a.cid, Uint8Array.from(a.bytes))
      assert.deepEqual(await store.has([asDagPb]), [true])
      await store.close()
    })

    it('rejects a block whose bytes do not match its CID', async () => {
      const { store } = await open()
      const a = rawBlock(randomBytes(100))
      await assert.rejects(store.put(a.cid, randomBytes(100)), { code: 'HASH_MISMATCH' })
      assert.deepEqual(await store.has([a.cid]), [false])
      await store.close()
    })

    it('rejects oversized blocks', async () => {
      const { store } = await open()
      const big = rawBlock(randomBytes(MAX_BLOCK_BYTES + 1))
      await assert.rejects(store.put(big.cid, big.bytes), { code: 'BLOCK_TOO_LARGE' })
      await store.close()
    })

    it('reports missing blocks and deletes', async () => {
      const { store } = await open()
      const a = rawBlock(randomBytes(100))
      await assert.rejects(store.get(a.cid), { code: 'BLOCK_NOT_FOUND' })
      await store.put(a.cid, Uint8Array.from(a.bytes))
      assert.equal(await store.delete(a.cid), true)
      assert.equal(await store.delete(a.cid), false)
      await assert.rejects(store.get(a.cid), { code: 'BLOCK_NOT_FOUND' })
      assert.deepEqual(store.stats(), { blocks: 0, bytes: 0 })
      await store.close()
    })

    it('never serves a corrupt copy', async () => {
      const { store } = await open()
      const a = rawBlock(randomBytes(100))
      await store.put(a.cid, Uint8Array.from(a.bytes))
      const bad = Buffer.from(a.bytes)
      bad[0] = (bad[0] ?? 0) ^ 0xff
      await store.putUnverifiedForTesting(a.cid, bad)
      await assert.rejects(store.get(a.cid), { code: 'BLOCK_CORRUPT' })
      await assert.rejects(store.get(a.cid), { code: 'BLOCK_NOT_FOUND' })
      await store.close()
    })

    it('stores durability records and keeps the stronger one', async () => {
      const { store } = await open()
      const a = rawBlock(randomBytes(300))
      const b = rawBlock(randomBytes(300))
      await store.put(a.cid, Uint8Array.from(a.bytes), replicate(2))
      await store.put(b.cid, Uint8Array.from(b.bytes))
      assert.deepEqual((await store.records([a.cid]))[0]?.policy, replicate(2))
      assert.equal((await store.records([b.cid]))[0]?.policy, undefined, 'no record: node default')
      await store.put(a.cid, Uint8Array.from(a.bytes), replicate(4))
      await store.put(a.cid, Uint8Array.from(a.bytes), replicate(1))
      await store.upgradePolicy(b.cid, replicate(3))
      const [ra, rb, none] = await store.records([a.cid, b.cid, rawBlock(randomBytes(5)).cid])
      assert.deepEqual(ra, { key: blockKey(a.cid), size: 300, policy: replicate(4) })
      assert.deepEqual(rb?.policy, replicate(3))
      assert.equal(none, undefined)
      assert.deepEqual(store.stats(), { blocks: 2, bytes: 600 }, 'a record change is not a new block')
      await store.close()
    })

    it('lists records in key order from a cursor', async () => {
      const { store } = await open()
      const blocks = Array.from({ length: 30 }, (_, i) => rawBlock(randomBytes(100 + i)))
      await Promise.all(blocks.map((b) => store.put(b.cid, Uint8Array.from(b.bytes), replicate(3))))
      const keys = blocks.map((b) => Buffer.from(blockKey(b.cid))).sort(Buffer.compare)
      const seen: Buffer[] = []
      let after: Uint8Array | undefined
      for (;;) {
        const page = await store.list({ after, limit: 7 })
        if (page.length === 0) break
        assert.ok(page.length <= 7)
        for (const r of page) {
          seen.push(Buffer.from(r.key))
          assert.deepEqual(r.policy, replicate(3))
        }
        after = page.at(-1)?.key
      }
      assert.deepEqual(seen, keys)
      await store.close()
    })

    it('orders the repair queue by surviving copies, then key, without duplicates', async () => {
      const { store } = await open()
      const k = (n: number) => Uint8Array.of(0x12, 0x20, n)
      await store.enqueueRepairs([
        { copies: 2, key: k(1) },
        { copies: 1, key: k(9) },
        { copies: 2, key: k(0) },
        { copies: 1, key: k(9) },
      ])
      assert.equal(store.repairQueueLength(), 3)
      const first = await store.nextRepairs(undefined, 2)
      assert.deepEqual(first, [
        { copies: 1, key: k(9) },
        { copies: 2, key: k(0) },
      ])
      assert.deepEqual(await store.nextRepairs(first[1], 10), [{ copies: 2, key: k(1) }])
      // Entries about a coded block's shards share the queue, in the same risk order.
      await store.enqueueRepairs([{ copies: 1, key: k(3), code: { k: 4, m: 2 } }])
      assert.deepEqual(await store.nextRepairs(undefined, 2), [
        { copies: 1, key: k(9) },
        { copies: 1, key: k(3), code: { k: 4, m: 2 } },
      ])
      await store.dequeueRepairs([{ copies: 1, key: k(3), code: { k: 4, m: 2 } }])
      await store.dequeueRepairs([
        { copies: 1, key: k(9) },
        { copies: 3, key: k(7) },
      ])
      assert.equal(store.repairQueueLength(), 2)
      await store.setState('cursor', Uint8Array.of(1, 2, 3))
      assert.deepEqual(Buffer.from((await store.getState('cursor')) ?? []), Buffer.of(1, 2, 3))
      await store.setState('cursor', undefined)
      assert.equal(await store.getState('cursor'), undefined)
      await store.close()
    })

    it('keeps blocks and counters across reopen', async () => {
      const { store, reopen } = await open()
      if (reopen === undefined) return store.close()
      const blocks = Array.from({ length: 50 }, () => rawBlock(randomBytes(5000)))
      await Promise.all(blocks.map((b) => store.put(b.cid, Uint8Array.from(b.bytes), replicate(2))))
      await store.enqueueRepairs([{ copies: 1, key: blockKey((blocks[0] as { cid: CID }).cid) }])
      await store.setState('cursor', Uint8Array.of(7))
      await store.close()
      const again = await reopen()
      assert.deepEqual(again.stats(), { blocks: 50, bytes: 250_000 })
      for (const b of blocks) assert.deepEqual(Buffer.from(await again.get(b.cid)), Buffer.from(b.bytes))
      assert.deepEqual((await again.records([(blocks[1] as { cid: CID }).cid]))[0]?.policy, replicate(2))
      assert.equal(again.repairQueueLength(), 1)
      assert.deepEqual(Buffer.from((await again.getState('cursor')) ?? []), Buffer.of(7))
      await again.close()
    })
  })
}

const logger = createLogger('test', 'silent')
const dirs: string[] = []
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

compliance('MemoryBlockStore', async () => ({ store: new MemoryBlockStore() }))
compliance('RocksBlockStore', async () => {
  const path = await mkdtemp(join(tmpdir(), 'mycel-rocks-'))
  dirs.push(path)
  const open = () => RocksBlockStore.open({ path, syncWrites: true, logger })
  return { store: await open(), reopen: open }
})

describe('RocksBlockStore health and metrics', () => {
  it('passes its self-check while it works, reports each batch, and is unhealthy once closed', async () => {
    const path = await mkdtemp(join(tmpdir(), 'mycel-rocks-'))
    dirs.push(path)
    const reports: WriteBatchReport[] = []
    const store = await RocksBlockStore.open({
      path,
      syncWrites: true,
      logger,
      onBatch: (r) => reports.push(r),
    })
    assert.deepEqual(store.health(), { ok: true })
    assert.deepEqual(await store.selfCheck(), { ok: true })
    const a = rawBlock(randomBytes(1000))
    await Promise.all([
      store.put(a.cid, Uint8Array.from(a.bytes)),
      store.put(a.cid, Uint8Array.from(a.bytes)),
    ])
    await store.put(a.cid, Uint8Array.from(a.bytes))
    const blocks = reports.filter((r) => r.newBlocks + r.existingBlocks > 0)
    assert.deepEqual(
      blocks.map((r) => [r.ok, r.newBlocks, r.existingBlocks, r.bytes]),
      [
        [true, 1, 1, 1000],
        [true, 0, 1, 0],
      ],
    )
    assert.ok((store.engineStats()?.estimatedKeys ?? 0) >= 1)
    await store.close()
    assert.equal(store.health().ok, false)
    assert.equal(store.engineStats(), undefined)
  })

  it('reports every kind of op, and a reopen (recovery) keeps blocks, records, counters and the repair queue', async () => {
    const path = await mkdtemp(join(tmpdir(), 'mycel-rocks-'))
    dirs.push(path)
    const reports: WriteBatchReport[] = []
    const store = await RocksBlockStore.open({
      path,
      syncWrites: true,
      logger,
      onBatch: (r) => reports.push(r),
    })
    const a = rawBlock(randomBytes(500))
    await store.put(a.cid, Uint8Array.from(a.bytes), replicate(2))
    reports.length = 0
    // One batch: a record upgrade of a held block, a queue entry and a state record.
    await Promise.all([
      store.put(a.cid, Uint8Array.from(a.bytes), replicate(3)),
      store.enqueueRepairs([{ copies: 1, key: blockKey(a.cid) }]),
      store.setState('cursor', Uint8Array.of(7)),
    ])
    assert.deepEqual(
      reports.map((r) => [r.ok, r.ops, r.newBlocks, r.existingBlocks, r.bytes]),
      [[true, 3, 0, 1, 0]],
    )
    // What the self-check does after a failed write: close and reopen RocksDB and its writer.
    await (store as unknown as { reopen(): Promise<void> }).reopen()
    assert.deepEqual(await store.selfCheck(), { ok: true })
    assert.deepEqual(store.stats(), { blocks: 1, bytes: 500 })
    assert.equal(store.repairQueueLength(), 1)
    assert.deepEqual((await store.records([a.cid]))[0]?.policy, replicate(3))
    assert.deepEqual(await store.getState('cursor'), Buffer.of(7))
    assert.deepEqual(Buffer.from(await store.get(a.cid)), Buffer.from(a.bytes))
    await store.close()
  })
})
