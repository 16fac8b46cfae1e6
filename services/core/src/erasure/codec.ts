import { createRequire } from 'node:module'
import { InvalidArgumentError } from '../errors.js'
import { EC_MAX_DATA_SHARDS, EC_MAX_PARITY_SHARDS } from './policy.js'
import { shardDataLength } from './shard.js'

/**
 * Reed-Solomon erasure coding of one block into K data and M parity shards, on
 * @ronomon/reed-solomon: Cauchy Reed-Solomon (a bitmatrix over GF(2^w), w <= 8 chosen per K+M by
 * the library) in a native addon whose work runs on the libuv thread pool, so encoding and
 * decoding never block the event loop. The data shards are the block itself, split in K and
 * zero-padded: a read that finds every data shard concatenates them without decoding.
 */
interface ReedSolomonAddon {
  MAX_K: number
  MAX_M: number
  create(k: number, m: number): Buffer
  encode(
    context: Buffer,
    sources: number,
    targets: number,
    buffer: Buffer,
    bufferOffset: number,
    bufferSize: number,
    parity: Buffer,
    parityOffset: number,
    paritySize: number,
    callback: (error?: Error) => void,
  ): void
}

const addon = createRequire(import.meta.url)('@ronomon/reed-solomon') as ReedSolomonAddon
if (addon.MAX_K < EC_MAX_DATA_SHARDS || addon.MAX_M < EC_MAX_PARITY_SHARDS) {
  throw new Error('@ronomon/reed-solomon supports fewer shards than Mycel allows')
}

/** Encoding contexts (the code's bitmatrix) are pure functions of K and M and safe to share. */
const contexts = new Map<string, Buffer>()
function contextFor(k: number, m: number): Buffer {
  const key = `${k}+${m}`
  let ctx = contexts.get(key)
  if (ctx === undefined) {
    if (!Number.isInteger(k) || !Number.isInteger(m) || k < 1 || m < 1) {
      throw new InvalidArgumentError(`invalid erasure code ${key}`)
    }
    ctx = addon.create(k, m)
    contexts.set(key, ctx)
  }
  return ctx
}

function run(
  k: number,
  m: number,
  sources: number,
  targets: number,
  data: Buffer,
  parity: Buffer,
): Promise<void> {
  const ctx = contextFor(k, m)
  return new Promise((resolve, reject) =>
    addon.encode(ctx, sources, targets, data, 0, data.byteLength, parity, 0, parity.byteLength, (err) =>
      err ? reject(err) : resolve(),
    ),
  )
}

const bits = (from: number, to: number) => {
  let mask = 0
  for (let i = from; i < to; i++) mask |= 1 << i
  return mask
}

/**
 * Splits `block` into K data shards (zero-padded to equal length) and computes M parity shards.
 * Returns K+M buffers of shardDataLength(block.byteLength, K) bytes, index order.
 */
export async function encodeShards(block: Uint8Array, k: number, m: number): Promise<Buffer[]> {
  const size = shardDataLength(block.byteLength, k)
  const data = Buffer.alloc(size * k)
  data.set(block, 0)
  const parity = Buffer.alloc(size * m)
  await run(k, m, bits(0, k), bits(k, k + m), data, parity)
  return [
    ...Array.from({ length: k }, (_, i) => data.subarray(i * size, (i + 1) * size)),
    ...Array.from({ length: m }, (_, i) => parity.subarray(i * size, (i + 1) * size)),
  ]
}

/**
 * Rebuilds shards from any K of the K+M. `shards[i]` is shard i or undefined when missing; every
 * present shard must be `dataLength` bytes. Returns all K+M shards (those in `wanted` rebuilt; by
 * default every missing one). InvalidArgumentError when fewer than K are present.
 */
export async function reconstructShards(
  shards: readonly (Uint8Array | undefined)[],
  k: number,
  m: number,
  dataLength: number,
  wanted?: readonly number[],
): Promise<Buffer[]> {
  if (shards.length !== k + m)
    throw new InvalidArgumentError(`expected ${k + m} shard slots, got ${shards.length}`)
  const data = Buffer.alloc(dataLength * k)
  const parity = Buffer.alloc(dataLength * m)
  let sources = 0
  let targets = 0
  let present = 0
  shards.forEach((s, i) => {
    if (s === undefined) {
      if (wanted === undefined || wanted.includes(i)) targets |= 1 << i
      return
    }
    if (s.byteLength !== dataLength) {
      throw new InvalidArgumentError(`shard ${i} is ${s.byteLength} bytes, expected ${dataLength}`)
    }
    if (i < k) data.set(s, i * dataLength)
    else parity.set(s, (i - k) * dataLength)
    sources |= 1 << i
    present++
  })
  if (present < k) {
    throw new InvalidArgumentError(`${present} shards cannot rebuild a ${k}+${m} code (needs ${k})`)
  }
  if (targets !== 0) await run(k, m, sources, targets, data, parity)
  return Array.from({ length: k + m }, (_, i) =>
    i < k
      ? data.subarray(i * dataLength, (i + 1) * dataLength)
      : parity.subarray((i - k) * dataLength, (i - k + 1) * dataLength),
  )
}

/**
 * The block from any K of its shards: the data shards concatenated, decoding only the missing
 * ones. The caller verifies the result against the block's CID before trusting it.
 */
export async function decodeBlock(
  shards: readonly (Uint8Array | undefined)[],
  k: number,
  m: number,
  blockSize: number,
): Promise<Uint8Array> {
  const dataLength = shardDataLength(blockSize, k)
  const dataShards = shards.slice(0, k)
  if (dataShards.every((s) => s !== undefined && s.byteLength === dataLength)) {
    return Buffer.concat(dataShards as Uint8Array[], blockSize)
  }
  const missing = dataShards.flatMap((s, i) => (s === undefined ? [i] : []))
  const all = await reconstructShards(shards, k, m, dataLength, missing)
  // The data shards are consecutive views of one buffer: the block is its first blockSize bytes.
  const first = all[0] as Buffer
  return Buffer.from(first.buffer, first.byteOffset, blockSize)
}
