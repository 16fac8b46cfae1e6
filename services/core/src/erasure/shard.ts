import { createHash } from 'node:crypto'
import { create as createDigest, decode as decodeDigest } from 'multiformats/hashes/digest'
import { CID, CODEC_RAW } from '../cid/cid.js'
import { MAX_BLOCK_BYTES } from '../constants.js'
import { InvalidArgumentError, MycelError } from '../errors.js'
import { EC_MAX_DATA_SHARDS, EC_MAX_PARITY_SHARDS } from './policy.js'

/**
 * The stored and transmitted form of one erasure-coded shard: a self-describing header, then the
 * shard's data. The header names the block it belongs to, so a node, a reader or repair holding
 * only the shard knows the block, its size and the code (K, M, index) without any other record.
 *
 * ```
 * offset  size  field
 *      0     4  magic "MYSH"
 *      4     1  format version (1)
 *      5     1  codec (1: Cauchy Reed-Solomon of @ronomon/reed-solomon 6)
 *      6     1  K data shards
 *      7     1  M parity shards
 *      8     1  index (0..K-1 data, K..K+M-1 parity)
 *      9     1  flags (0)
 *     10     4  block size in bytes (uint32 BE)
 *     14     4  shard data length (uint32 BE) = ceil(size / K) rounded up to a multiple of 8
 *     18     2  CID length L (uint16 BE)
 *     20     L  the block's CID (binary)
 *   20+L    32  SHA-256 of bytes [0, 20+L) followed by the data: covers header and data
 *   52+L     …  shard data (data shards zero-padded past the block's end)
 * ```
 */
export const SHARD_MAGIC = Buffer.from('MYSH', 'ascii')
export const SHARD_FORMAT_VERSION = 1
export const SHARD_CODEC_CAUCHY_RS = 1
const FIXED_HEADER_BYTES = 20
const CHECKSUM_BYTES = 32

export interface ShardHeader {
  /** The block this shard belongs to. */
  cid: CID
  blockSize: number
  k: number
  m: number
  index: number
  dataLength: number
}

export interface Shard extends ShardHeader {
  /** The shard's data (a view into `bytes`). */
  data: Uint8Array
  /** The whole encoded shard: header, checksum, data. */
  bytes: Uint8Array
}

/** A shard whose checksum does not match its header and data (HASH_MISMATCH: damaged in storage or transit). */
export class ShardChecksumError extends MycelError {
  readonly code = 'HASH_MISMATCH'
  override name = 'ShardChecksumError'
  constructor(what: string) {
    super(`${what}: shard bytes do not match their checksum`)
  }
}

/** Bytes of each shard's data for a block of `blockSize` bytes split K ways (the codec wants multiples of 8). */
export function shardDataLength(blockSize: number, k: number): number {
  return Math.max(8, Math.ceil(Math.ceil(blockSize / k) / 8) * 8)
}

/** Encodes a shard: header, checksum over header and data, data (one copy of the data). */
export function encodeShard(h: Omit<ShardHeader, 'dataLength'>, data: Uint8Array): Uint8Array {
  const cid = h.cid.bytes
  const headLength = FIXED_HEADER_BYTES + cid.byteLength
  const out = Buffer.allocUnsafe(headLength + CHECKSUM_BYTES + data.byteLength)
  SHARD_MAGIC.copy(out, 0)
  out[4] = SHARD_FORMAT_VERSION
  out[5] = SHARD_CODEC_CAUCHY_RS
  out[6] = h.k
  out[7] = h.m
  out[8] = h.index
  out[9] = 0
  out.writeUInt32BE(h.blockSize, 10)
  out.writeUInt32BE(data.byteLength, 14)
  out.writeUInt16BE(cid.byteLength, 18)
  out.set(cid, FIXED_HEADER_BYTES)
  checksum(out.subarray(0, headLength), data).copy(out, headLength)
  out.set(data, headLength + CHECKSUM_BYTES)
  return out
}

function checksum(head: Uint8Array, data: Uint8Array): Buffer {
  return createHash('sha256').update(head).update(data).digest()
}

/**
 * Parses a shard's header and checks that its fields are consistent with each other and with
 * the length of `bytes`; the checksum is NOT checked (see decodeShard). InvalidArgumentError
 * says what is wrong.
 */
export function parseShardHeader(bytes: Uint8Array): ShardHeader & { headLength: number } {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const bad = (why: string) => new InvalidArgumentError(`invalid shard: ${why}`)
  if (b.byteLength < FIXED_HEADER_BYTES + CHECKSUM_BYTES) throw bad(`${b.byteLength} bytes is too short`)
  if (!b.subarray(0, 4).equals(SHARD_MAGIC)) throw bad('bad magic')
  if (b[4] !== SHARD_FORMAT_VERSION) throw bad(`unknown format version ${b[4]}`)
  if (b[5] !== SHARD_CODEC_CAUCHY_RS) throw bad(`unknown codec ${b[5]}`)
  const k = b[6] as number
  const m = b[7] as number
  const index = b[8] as number
  if (k < 1 || k > EC_MAX_DATA_SHARDS) throw bad(`K=${k} out of range`)
  if (m < 1 || m > EC_MAX_PARITY_SHARDS) throw bad(`M=${m} out of range`)
  if (index >= k + m) throw bad(`index ${index} out of range for ${k}+${m}`)
  if (b[9] !== 0) throw bad(`unknown flags ${b[9]}`)
  const blockSize = b.readUInt32BE(10)
  const dataLength = b.readUInt32BE(14)
  const cidLength = b.readUInt16BE(18)
  if (blockSize < 1 || blockSize > MAX_BLOCK_BYTES) throw bad(`block size ${blockSize} out of range`)
  if (dataLength !== shardDataLength(blockSize, k)) {
    throw bad(`data length ${dataLength} does not fit a ${blockSize}-byte block in ${k} shards`)
  }
  const headLength = FIXED_HEADER_BYTES + cidLength
  if (b.byteLength !== headLength + CHECKSUM_BYTES + dataLength) {
    throw bad(`${b.byteLength} bytes where the header announces ${headLength + CHECKSUM_BYTES + dataLength}`)
  }
  let cid: CID
  try {
    cid = CID.decode(b.subarray(FIXED_HEADER_BYTES, headLength)) as CID
  } catch (err) {
    throw bad(`bad CID (${err instanceof Error ? err.message : String(err)})`)
  }
  return { cid, blockSize, k, m, index, dataLength, headLength }
}

/**
 * Parses and verifies a shard: InvalidArgumentError for a malformed one, ShardChecksumError
 * when its checksum does not match. `what` names it in messages. With `verify` false only the
 * header is checked: for a reader that verifies the rebuilt block against its CID anyway and
 * checks shard checksums only to find a culprit.
 */
export function decodeShard(bytes: Uint8Array, what = 'shard', verify = true): Shard {
  const h = parseShardHeader(bytes)
  const sumAt = h.headLength
  const data = bytes.subarray(sumAt + CHECKSUM_BYTES)
  if (
    verify &&
    !checksum(bytes.subarray(0, sumAt), data).equals(bytes.subarray(sumAt, sumAt + CHECKSUM_BYTES))
  ) {
    throw new ShardChecksumError(what)
  }
  const { headLength: _, ...header } = h
  return { ...header, data, bytes }
}

/** The header bytes of an encoded shard (everything before the data), for header-only listings. */
export function shardHeaderBytes(bytes: Uint8Array): Uint8Array {
  return bytes.subarray(0, parseShardHeader(bytes).headLength + CHECKSUM_BYTES)
}

/**
 * The storage key of a shard on a node: the block's multihash, then K, M and the index. Shards
 * of one block sort together (a prefix scan finds them all), and the same block coded with two
 * different K+M never shares a key.
 */
export function shardKey(multihash: Uint8Array, k: number, m: number, index: number): Buffer {
  const key = Buffer.allocUnsafe(multihash.byteLength + 3)
  key.set(multihash, 0)
  key[multihash.byteLength] = k
  key[multihash.byteLength + 1] = m
  key[multihash.byteLength + 2] = index
  return key
}

/** The key range [gte, lte] holding every shard of the block with this multihash. */
export function shardKeyRange(multihash: Uint8Array): { gte: Buffer; lte: Buffer } {
  return { gte: shardKey(multihash, 0, 0, 0), lte: shardKey(multihash, 255, 255, 255) }
}

/** Splits a shard key back into the block's multihash and K, M, index. */
export function parseShardKey(key: Uint8Array): {
  multihash: Uint8Array
  k: number
  m: number
  index: number
} {
  const n = key.byteLength
  if (n < 4) throw new InvalidArgumentError('invalid shard key')
  return {
    multihash: key.subarray(0, n - 3),
    k: key[n - 3] as number,
    m: key[n - 2] as number,
    index: key[n - 1] as number,
  }
}

/**
 * A CID for the block with this multihash, for requests to nodes that key by multihash (scrub
 * and repair know a stored shard by its key only). Verification uses only the multihash.
 */
export function cidOfMultihash(multihash: Uint8Array): CID {
  const d = decodeDigest(multihash)
  return CID.createV1(CODEC_RAW, createDigest(d.code, d.digest)) as CID
}
