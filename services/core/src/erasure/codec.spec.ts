import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { decodeBlock, encodeShards, reconstructShards } from './codec.js'
import { shardDataLength } from './shard.js'

/** Every subset of {0..n-1} with at most `max` elements. */
function subsets(n: number, max: number): number[][] {
  const out: number[][] = []
  for (let mask = 0; mask < 1 << n; mask++) {
    const s = Array.from({ length: n }, (_, i) => i).filter((i) => mask & (1 << i))
    if (s.length <= max) out.push(s)
  }
  return out
}

describe('erasure codec (@ronomon/reed-solomon)', () => {
  for (const [k, m] of [
    [1, 1],
    [2, 1],
    [3, 2],
    [4, 2],
    [6, 3],
  ] as const) {
    it(`${k}+${m}: every erasure pattern of up to ${m} shards decodes to the block`, async () => {
      // An odd size checks the zero padding of the last data shard.
      const block = randomBytes(1000 * k + 13)
      const shards = await encodeShards(block, k, m)
      assert.equal(shards.length, k + m)
      for (const s of shards) assert.equal(s.byteLength, shardDataLength(block.byteLength, k))
      // Data shards are the block split in K (systematic code).
      assert.deepEqual(Buffer.concat(shards.slice(0, k)).subarray(0, block.byteLength), block)
      for (const lost of subsets(k + m, m)) {
        const present = shards.map((s, i) => (lost.includes(i) ? undefined : Buffer.from(s)))
        const back = await decodeBlock(present, k, m, block.byteLength)
        assert.deepEqual(Buffer.from(back), block, `lost ${lost.join(',')}`)
        const all = await reconstructShards(present, k, m, shards[0]!.byteLength)
        for (const [i, s] of all.entries()) {
          assert.deepEqual(s, shards[i], `shard ${i} rebuilt after losing ${lost.join(',')}`)
        }
      }
    })
  }

  it('refuses to decode from fewer than K shards', async () => {
    const block = randomBytes(4096)
    const shards = await encodeShards(block, 4, 2)
    const present = shards.map((s, i) => (i < 3 ? s : undefined))
    await assert.rejects(decodeBlock(present, 4, 2, block.byteLength), /3 shards cannot rebuild a 4\+2 code/)
  })

  it('refuses shards of the wrong length', async () => {
    const block = randomBytes(4096)
    const shards = await encodeShards(block, 2, 1)
    await assert.rejects(
      decodeBlock([shards[0], shards[1]!.subarray(8), shards[2]], 2, 1, block.byteLength),
      /shard 1 is/,
    )
  })

  it('rebuilds only the wanted shards', async () => {
    const block = randomBytes(8192)
    const shards = await encodeShards(block, 4, 2)
    const present = [shards[0], undefined, shards[2], shards[3], undefined, shards[5]]
    const out = await reconstructShards(present, 4, 2, shards[0]!.byteLength, [4])
    assert.deepEqual(out[4], shards[4])
  })

  it('encodes off the event loop: many blocks concurrently, all correct', async () => {
    const blocks = Array.from({ length: 16 }, () => randomBytes(262_144))
    const encoded = await Promise.all(blocks.map((b) => encodeShards(b, 4, 2)))
    const decoded = await Promise.all(
      encoded.map((shards, i) =>
        decodeBlock(
          shards.map((s, j) => (j === i % 4 || j === 5 ? undefined : s)),
          4,
          2,
          blocks[i]!.byteLength,
        ),
      ),
    )
    for (const [i, d] of decoded.entries()) assert.deepEqual(Buffer.from(d), blocks[i])
  })
})
