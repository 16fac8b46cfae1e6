import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { encode as encodeDagPb, prepare } from '@ipld/dag-pb'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import { CID } from '../cid/cid.js'
import {
  ecReplicas,
  ecWriteQuorum,
  formatDurability,
  isErasureCodable,
  parseDurability,
  parseDurabilitySetting,
  resolveDurability,
} from './policy.js'

const cidOf = (code: number, bytes: Uint8Array) =>
  CID.createV1(code, createDigest(0x12, createHash('sha256').update(bytes).digest())) as CID

describe('durability policy', () => {
  it('parses replicate:R and ec:K+M (a "+" decoded as a space too)', () => {
    assert.deepEqual(parseDurability('replicate:3'), { kind: 'replicate', copies: 3 })
    assert.deepEqual(parseDurability('ec:4+2'), { kind: 'ec', k: 4, m: 2 })
    assert.deepEqual(parseDurability('ec:6 3'), { kind: 'ec', k: 6, m: 3 })
    assert.deepEqual(parseDurabilitySetting('auto'), { kind: 'auto' })
    for (const s of ['replicate:3', 'ec:4+2', 'auto'])
      assert.equal(formatDurability(parseDurabilitySetting(s)), s)
  })

  it('rejects bad policies with the rule that failed', () => {
    const cases: Array<[string, RegExp]> = [
      ['replicate:0', /1 <= R <= 16/],
      ['replicate:17', /1 <= R <= 16/],
      ['ec:0+2', /1 <= K <= 24 .*K=0/],
      ['ec:25+2', /K=25/],
      ['ec:4+0', /1 <= M <= 6 .*M=0/],
      ['ec:4+7', /M=7/],
      ['ec:4', /must be replicate:R or ec:K\+M/],
      ['raid5', /must be replicate:R or ec:K\+M/],
      ['auto', /must be replicate:R or ec:K\+M/],
    ]
    for (const [text, message] of cases) assert.throws(() => parseDurability(text), message, text)
  })

  it('write quorum and replica counts give the same tolerance as a replication majority', () => {
    assert.equal(ecWriteQuorum(2, 1), 3)
    assert.equal(ecWriteQuorum(4, 2), 5)
    assert.equal(ecWriteQuorum(6, 3), 8)
    assert.equal(ecReplicas(2), 3)
  })

  it('resolves auto by cluster size and refuses policies the cluster cannot place', () => {
    const auto = { kind: 'auto' } as const
    assert.deepEqual(resolveDurability(undefined, auto, 3, 3), { kind: 'replicate', copies: 3 })
    assert.deepEqual(resolveDurability(undefined, auto, 6, 3), { kind: 'ec', k: 4, m: 2 })
    assert.throws(
      () => resolveDurability({ kind: 'ec', k: 6, m: 3 }, auto, 5, 3),
      /ec:6\+3 needs 9 storage nodes \(one per shard\); the cluster has 5/,
    )
    assert.throws(() => resolveDurability({ kind: 'replicate', copies: 4 }, auto, 3, 3), /1 <= R <= 3/)
  })

  it('codes large leaves only: raw blocks and dag-pb nodes without links', () => {
    const big = new Uint8Array(70_000)
    assert.equal(isErasureCodable(cidOf(raw.code, big), big, 65_536), true)
    assert.equal(
      isErasureCodable(cidOf(raw.code, big.subarray(0, 1000)), big.subarray(0, 1000), 65_536),
      false,
    )
    const leaf = encodeDagPb(prepare({ Data: big }))
    assert.equal(isErasureCodable(cidOf(0x70, leaf), leaf, 65_536), true)
    const link = { Hash: cidOf(raw.code, big), Name: '', Tsize: 70_000 }
    const parent = encodeDagPb(prepare({ Data: big, Links: [link] }))
    assert.equal(isErasureCodable(cidOf(0x70, parent), parent, 65_536), false)
  })
})
