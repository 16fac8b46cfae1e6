import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { CID, createLogger } from '@mycel/core'
import type { PinRecord } from '@mycel/proto'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import { PinSet } from './pin-set.js'
import { PinStore } from './pin-store.js'

function cidOf(text: string): CID {
  return CID.createV1(raw.code, createDigest(0x12, createHash('sha256').update(text).digest())) as CID
}

function rec(name: string, timestamp: number, pinned = true, origin = 'node-a'): PinRecord {
  return {
    cid: Buffer.from(cidOf(name).bytes),
    pinned,
    durability: '',
    name,
    timestamp: BigInt(timestamp),
    origin,
  }
}

describe('PinSet (last writer wins, bucket digests)', () => {
  it('keeps the newest record per CID whatever the order records arrive in', () => {
    const records = [rec('x', 5), rec('x', 9, false), rec('x', 7), rec('y', 1), rec('x', 9, true, 'node-b')]
    const forward = new PinSet()
    const backward = new PinSet()
    for (const r of records) forward.merge(r)
    for (const r of [...records].reverse()) backward.merge(r)
    // (9, node-b) beats (9, node-a): equal timestamps fall back to the origin.
    assert.deepEqual(forward.get(cidOf('x'))?.origin, 'node-b')
    assert.deepEqual(forward.bucketDigests(), backward.bucketDigests())
    assert.equal(forward.size, 2)
  })

  it('counts tombstones out of the pins but keeps them, so a removal wins over older pins', () => {
    const s = new PinSet()
    s.merge(rec('x', 1))
    assert.equal(s.merge(rec('x', 2, false)), true)
    assert.equal(s.merge(rec('x', 1)), false)
    assert.deepEqual([s.size, s.recordCount, s.pins().length], [0, 1, 0])
  })

  it('finds exactly the buckets where two sets differ, and converges by exchanging them', () => {
    const a = new PinSet()
    const b = new PinSet()
    for (let i = 0; i < 200; i++) {
      a.merge(rec(`p${i}`, 10))
      b.merge(rec(`p${i}`, 10))
    }
    a.merge(rec('only-a', 11))
    b.merge(rec('p3', 12, false))
    const differing = a.differingBuckets(b.bucketDigests())
    assert.ok(differing.length >= 1 && differing.length <= 2)
    for (const r of b.recordsIn(new Set(differing))) a.merge(r)
    for (const r of a.recordsIn(new Set(differing))) b.merge(r)
    assert.deepEqual(a.differingBuckets(b.bucketDigests()), [])
    assert.equal(a.size, 200)
  })

  it('treats CIDv0 and CIDv1 of the same DAG as one pin', () => {
    const s = new PinSet()
    const v1 = CID.createV1(0x70, cidOf('d').multihash) as CID
    const v0 = CID.createV0(cidOf('d').multihash as never) as unknown as CID
    s.merge({ ...rec('d', 1), cid: Buffer.from(v0.bytes) })
    assert.equal(s.get(v1)?.timestamp, 1n)
  })
})

describe('PinStore (RocksDB)', () => {
  const dirs: string[] = []
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true })
  })

  it('keeps records across reopen and never moves its clock backwards', async () => {
    const path = await mkdtemp(join(tmpdir(), 'mycel-pins-'))
    dirs.push(path)
    const logger = createLogger('test', 'silent')
    const store = await PinStore.open({ path, syncWrites: true, logger })
    const future = Date.now() + 60_000
    assert.equal((await store.apply([rec('a', 1), rec('b', future), rec('a', 3, false)])).length, 2)
    assert.ok(store.nextTimestamp() > BigInt(future))
    await store.close()
    const again = await PinStore.open({ path, syncWrites: true, logger })
    assert.deepEqual(
      again.set.pins().map((r) => r.name),
      ['b'],
    )
    assert.equal(again.set.get(cidOf('a'))?.pinned, false)
    assert.ok(again.nextTimestamp() > BigInt(future))
    await again.close()
  })
})
