import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { CID, createLogger, MAX_BLOCK_BYTES } from '@mycel/core'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import type { BlockStore, WriteBatchReport } from './block-store.js'
import { MemoryBlockStore } from './memory-block-store.js'
import { RocksBlockStore } from './rocks-block-store.js'

function rawBlock(bytes: Uint8Array): { cid: CID; bytes: Uint8Array } {
  const digest = createDigest(0x12, createHash('sha256').update(bytes).digest())
  return { cid: CID.createV1(raw.code, digest) as CID, bytes }
}

type TestStore = BlockStore & { putUnverifiedForTesting(cid: CID, bytes: Uint8Array): Promise<void> }

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

    it('keeps blocks and counters across reopen', async () => {
      const { store, reopen } = await open()
      if (reopen === undefined) return store.close()
      const blocks = Array.from({ length: 50 }, () => rawBlock(randomBytes(5000)))
      await Promise.all(blocks.map((b) => store.put(b.cid, Uint8Array.from(b.bytes))))
      await store.close()
      const again = await reopen()
      assert.deepEqual(again.stats(), { blocks: 50, bytes: 250_000 })
      for (const b of blocks) assert.deepEqual(Buffer.from(await again.get(b.cid)), Buffer.from(b.bytes))
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
})
