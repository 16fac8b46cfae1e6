import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { CID, createLogger, encodeShard, encodeShards, shardKey } from '@mycel/core'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import { RocksBlockStore } from '../block-store/rocks-block-store.js'
import { RocksShardStore } from './rocks-shard-store.js'

const logger = createLogger('test', 'silent')
// put() may take ownership of the bytes (they move to the writer thread): tests hand over copies.
const copy = (b: Uint8Array) => Uint8Array.from(b)
const dirs: string[] = []
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

async function open(path?: string) {
  const dir = path ?? (await mkdtemp(join(tmpdir(), 'mycel-shards-')))
  if (path === undefined) dirs.push(dir)
  const blocks = await RocksBlockStore.open({ path: dir, syncWrites: true, logger })
  const corrupt: string[] = []
  const shards = await RocksShardStore.open(blocks.shared(), { logger, onCorrupt: (by) => corrupt.push(by) })
  return {
    dir,
    shards,
    corrupt,
    close: async () => {
      await shards.close()
      await blocks.close()
    },
  }
}

async function codedBlock(size: number, k: number, m: number) {
  const bytes = randomBytes(size)
  const cid = CID.createV1(raw.code, createDigest(0x12, createHash('sha256').update(bytes).digest())) as CID
  const data = await encodeShards(bytes, k, m)
  const shards = data.map((d, index) => encodeShard({ cid, blockSize: size, k, m, index }, d))
  return { cid, shards }
}

describe('RocksShardStore', () => {
  it('stores verified shards, lists, filters, deletes and counts them exactly across reopen', async () => {
    const s = await open()
    const a = await codedBlock(70_000, 4, 2)
    const b = await codedBlock(80_000, 2, 1)
    await Promise.all([
      s.shards.put(a.cid, copy(a.shards[0]!)),
      s.shards.put(a.cid, copy(a.shards[5]!)),
      s.shards.put(a.cid, copy(a.shards[0]!)),
      s.shards.put(b.cid, copy(b.shards[1]!)),
    ])
    assert.deepEqual(await s.shards.list([a.cid, b.cid]), [
      [
        { k: 4, m: 2, index: 0 },
        { k: 4, m: 2, index: 5 },
      ],
      [{ k: 2, m: 1, index: 1 }],
    ])
    const got = await s.shards.get(a.cid, { indices: [5] })
    assert.equal(got.shards.length, 1)
    assert.deepEqual(Buffer.from(got.shards[0]!.bytes), Buffer.from(a.shards[5]!))
    assert.deepEqual((await s.shards.get(a.cid, { k: 2, m: 1 })).shards, [])
    const bytes = a.shards[0]!.byteLength * 2 + b.shards[1]!.byteLength
    assert.deepEqual(s.shards.stats(), { shards: 3, bytes })
    await s.close()

    const again = await open(s.dir)
    assert.deepEqual(again.shards.stats(), { shards: 3, bytes })
    assert.equal(
      await again.shards.delete(a.cid, [
        { k: 4, m: 2, index: 5 },
        { k: 4, m: 2, index: 3 },
      ]),
      1,
    )
    assert.deepEqual(again.shards.stats(), { shards: 2, bytes: bytes - a.shards[5]!.byteLength })
    const scanned = await again.shards.scan(undefined, 10)
    assert.equal(scanned.length, 2)
    assert.deepEqual(await again.shards.scan(scanned[0]!.key, 10), [scanned[1]])
    await again.close()
  })

  it('refuses a shard with a bad checksum or naming another block', async () => {
    const s = await open()
    const a = await codedBlock(70_000, 4, 2)
    const b = await codedBlock(70_000, 4, 2)
    const flipped = Buffer.from(a.shards[1]!)
    flipped[flipped.length - 1] = (flipped[flipped.length - 1] as number) ^ 1
    await assert.rejects(s.shards.put(a.cid, flipped), { code: 'HASH_MISMATCH' })
    await assert.rejects(s.shards.put(a.cid, copy(b.shards[1]!)), /names block/)
    await assert.rejects(s.shards.put(a.cid, randomBytes(100)), /invalid shard/)
    assert.deepEqual(s.shards.stats(), { shards: 0, bytes: 0 })
    await s.close()
  })

  it('drops a shard damaged on disk, on read and on scrub, and reports it', async () => {
    const s = await open()
    const a = await codedBlock(70_000, 4, 2)
    await s.shards.put(a.cid, copy(a.shards[2]!))
    await s.shards.put(a.cid, copy(a.shards[3]!))
    const damage = (index: number) => {
      const bad = Buffer.from(a.shards[index]!)
      bad[100] = (bad[100] as number) ^ 0xff
      return s.shards.putUnverifiedForTesting(shardKey(a.cid.multihash.bytes, 4, 2, index), bad)
    }
    await damage(2)
    const read = await s.shards.get(a.cid)
    assert.deepEqual(
      read.shards.map((x) => x.index),
      [3],
    )
    assert.deepEqual(read.corrupt, [{ k: 4, m: 2, index: 2 }])
    await damage(3)
    const [entry] = await s.shards.scan(undefined, 10)
    assert.equal(await s.shards.verify(entry!), false)
    assert.deepEqual(s.corrupt, ['read', 'scrub'])
    assert.deepEqual(await s.shards.list([a.cid]), [[]])
    assert.deepEqual(s.shards.stats(), { shards: 0, bytes: 0 })
    await s.close()
  })
})
