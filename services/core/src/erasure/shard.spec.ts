import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import { CID } from '../cid/cid.js'
import {
  decodeShard,
  encodeShard,
  parseShardHeader,
  parseShardKey,
  ShardChecksumError,
  shardDataLength,
  shardHeaderBytes,
  shardKey,
  shardKeyRange,
} from './shard.js'

const block = randomBytes(70_001)
const cid = CID.createV1(raw.code, createDigest(0x12, createHash('sha256').update(block).digest())) as CID
const data = Buffer.alloc(shardDataLength(block.byteLength, 4), 7)
const good = () => Buffer.from(encodeShard({ cid, blockSize: block.byteLength, k: 4, m: 2, index: 5 }, data))

const byteAt = (at: number, value: number) => (b: Buffer) => {
  b[at] = value
  return b
}
const u32At = (at: number, value: number) => (b: Buffer) => {
  b.writeUInt32BE(value, at)
  return b
}

describe('shard format', () => {
  it('round-trips header and data', () => {
    const s = decodeShard(good())
    assert.ok(s.cid.equals(cid))
    assert.deepEqual([s.blockSize, s.k, s.m, s.index, s.dataLength], [70_001, 4, 2, 5, 17_504])
    assert.deepEqual(Buffer.from(s.data), data)
    assert.equal(shardHeaderBytes(s.bytes).byteLength, s.bytes.byteLength - data.byteLength)
  })

  it('detects any flipped byte: in the header, the checksum or the data', () => {
    const bytes = good()
    for (const at of [4, 6, 8, 10, 14, 18, 25, 60, 100, bytes.length - 1]) {
      const bad = Buffer.from(bytes)
      bad[at] = (bad[at] as number) ^ 0x01
      assert.throws(
        () => decodeShard(bad),
        (err: Error) => err instanceof Error,
        `byte ${at}`,
      )
    }
    const dataFlip = Buffer.from(bytes)
    dataFlip[bytes.length - 10] = (dataFlip[bytes.length - 10] as number) ^ 0xff
    assert.throws(() => decodeShard(dataFlip), ShardChecksumError)
  })

  it('rejects malformed headers with a reason', () => {
    const bytes = good()
    const cases: Array<[string, (b: Buffer) => Buffer, RegExp]> = [
      ['empty', () => Buffer.alloc(0), /too short/],
      ['magic', (b) => Buffer.concat([Buffer.from('XXXX'), b.subarray(4)]), /bad magic/],
      ['version', byteAt(4, 9), /format version 9/],
      ['codec', byteAt(5, 2), /codec 2/],
      ['k=0', byteAt(6, 0), /K=0/],
      ['k too big', byteAt(6, 200), /K=200/],
      ['m=0', byteAt(7, 0), /M=0/],
      ['index', byteAt(8, 6), /index 6 out of range for 4\+2/],
      ['flags', byteAt(9, 1), /flags/],
      ['size 0', u32At(10, 0), /block size 0/],
      ['size too big', u32At(10, 3 * 1024 * 1024), /block size/],
      ['data length', u32At(14, 16), /data length 16/],
      ['truncated', (b) => b.subarray(0, b.length - 1), /bytes where the header announces/],
      ['trailing', (b) => Buffer.concat([b, Buffer.alloc(1)]), /bytes where the header announces/],
      ['cid', byteAt(20, 0xff), /bad CID/],
    ]
    for (const [name, mutate, message] of cases) {
      assert.throws(() => parseShardHeader(mutate(Buffer.from(bytes))), message, name)
    }
  })

  it('keys sort by block, then K, M and index, inside the block range', () => {
    const mh = cid.multihash.bytes
    const key = shardKey(mh, 4, 2, 5)
    const parsed = parseShardKey(key)
    assert.deepEqual(
      { ...parsed, multihash: Buffer.from(parsed.multihash) },
      { multihash: Buffer.from(mh), k: 4, m: 2, index: 5 },
    )
    const { gte, lte } = shardKeyRange(mh)
    assert.ok(Buffer.compare(gte, key) <= 0 && Buffer.compare(key, lte) <= 0)
    const other = shardKey(createDigest(0x12, randomBytes(32)).bytes, 4, 2, 5)
    assert.ok(Buffer.compare(other, gte) < 0 || Buffer.compare(other, lte) > 0)
  })
})
