import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { CarBlockIterator } from '@ipld/car/iterator'
import { CarWriter } from '@ipld/car/writer'
import type { BlockWriter } from '@mycel/cluster'
import {
  assertStorableBlock,
  BlockTooLargeError,
  type CID,
  ConfigInvalidError,
  InvalidCarError,
  isMycelError,
  isSupportedHash,
  MAX_BLOCK_BYTES,
  UnsupportedHashError,
} from '@mycel/core'
import type { Response } from 'express'
import type { Block } from './dag-walk.js'

/**
 * The bytes of a CARv1 of `roots` and `blocks`, produced as fast as they are read (CarWriter.put
 * waits for the reader). A failure of `blocks` ends the iteration with that error, after the
 * bytes written so far.
 */
export async function* carBytes(roots: CID[], blocks: AsyncIterable<Block>): AsyncGenerator<Uint8Array> {
  const { writer, out } = CarWriter.create(roots)
  let failure: unknown
  const producer = (async () => {
    try {
      for await (const block of blocks) await writer.put(block)
    } catch (err) {
      failure = err ?? new Error('CAR source failed')
    }
    await writer.close()
  })()
  for await (const chunk of out) yield chunk
  await producer
  if (failure !== undefined) throw failure
}

/**
 * Streams a CARv1 into `res` with backpressure. A failure after the headers are sent cuts the
 * connection, so the client sees a truncated CAR, never one that looks complete (the path
 * gateway's convention). Resolves when the response ended or broke.
 */
export async function pipeCar(
  res: Response,
  roots: CID[],
  blocks: AsyncIterable<Block>,
  onError: (err: unknown) => void,
): Promise<void> {
  try {
    await pipeline(Readable.from(carBytes(roots, blocks)), res)
  } catch (err) {
    onError(err)
    res.destroy()
  }
}

/** A CAR written to a spill file, checked block by block, not yet stored. */
export interface SpooledCar {
  path: string
  roots: CID[]
  /** Multihashes (hex) of the roots found among this CAR's own blocks. */
  rootsInside: Set<string>
  blocks: number
  bytes: number
}

/**
 * CAR import in two passes so that a bad CAR stores nothing: the upload is spilled to a file
 * under MYCEL_TMP_DIR (bounded by the upload limit), every block of every CAR is
 * verified, and only then are the blocks read again and written at the write quorum.
 */
export class CarSpool {
  readonly cars: SpooledCar[] = []
  private dir: string | undefined

  /** `parent`: where spill files go (MYCEL_TMP_DIR). */
  constructor(private readonly parent: string) {}

  /** Spills one CAR (the caller bounds `content`) and verifies every block in it. */
  async add(content: AsyncIterable<Uint8Array>, maxBlockBytes: number): Promise<SpooledCar> {
    this.dir ??= await mkdtemp(join(this.parent, 'mycel-dag-import-'))
    const path = join(this.dir, `${this.cars.length}.car`)
    await pipeline(Readable.from(content), createWriteStream(path))
    const label = `CAR file ${this.cars.length + 1}`
    // Before any parser allocates a declared length, check every length against the limits.
    await checkCarFraming(path, label)
    const car: SpooledCar = { path, roots: [], rootsInside: new Set(), blocks: 0, bytes: 0 }
    let rootKeys = new Set<string>()
    const onRoots = (roots: CID[]) => {
      car.roots.push(...roots)
      rootKeys = new Set(roots.map(multihashKey))
    }
    for await (const block of readCar(path, label, onRoots)) {
      car.blocks++
      const key = multihashKey(block.cid)
      if (rootKeys.has(key)) car.rootsInside.add(key)
      const where = `${label}, block ${car.blocks} (${block.cid.toString()})`
      if (block.bytes.byteLength > maxBlockBytes) {
        throw new InvalidCarError(
          `${where}: ${new BlockTooLargeError(block.bytes.byteLength, maxBlockBytes).message}; nothing was imported`,
        )
      }
      if (!isSupportedHash(block.cid.multihash.code)) {
        throw new InvalidCarError(
          `${where}: ${new UnsupportedHashError(block.cid.multihash.code).message}; nothing was imported`,
        )
      }
      try {
        assertStorableBlock(block.cid, block.bytes)
      } catch (err) {
        throw new InvalidCarError(`${where}: ${(err as Error).message}; nothing was imported`)
      }
      car.bytes += block.bytes.byteLength
    }
    this.cars.push(car)
    return car
  }

  /** Whether a spooled CAR holds this root (a root of one CAR may sit in another: reread then). */
  async containsRoot(cid: CID): Promise<boolean> {
    const key = multihashKey(cid)
    if (this.cars.some((c) => c.rootsInside.has(key))) return true
    for (const car of this.cars) {
      for await (const block of readCar(car.path, car.path)) {
        if (multihashKey(block.cid) === key) return true
      }
    }
    return false
  }

  /** Second pass: writes every verified block through `session`, up to `concurrency` in flight. */
  async store(session: BlockWriter, concurrency: number, signal: AbortSignal): Promise<void> {
    const inflight = new Set<Promise<void>>()
    let failure: unknown
    for (const car of this.cars) {
      for await (const block of readCar(car.path, car.path)) {
        signal.throwIfAborted()
        if (failure !== undefined) throw failure
        const put = session.put(block.cid, block.bytes).then(
          () => {
            inflight.delete(put)
          },
          (err: unknown) => {
            inflight.delete(put)
            failure ??= err
          },
        )
        inflight.add(put)
        if (inflight.size >= concurrency) await Promise.race(inflight)
      }
    }
    await Promise.all(inflight)
    if (failure !== undefined) throw failure
  }

  async dispose(): Promise<void> {
    if (this.dir !== undefined) await rm(this.dir, { recursive: true, force: true })
  }
}

/**
 * Checks at startup that the spool directory takes files, so that a read-only or missing
 * MYCEL_TMP_DIR stops the gateway with a clear message instead of failing the first import.
 */
export async function assertSpoolDirWritable(dir: string): Promise<void> {
  try {
    const probe = await mkdtemp(join(dir, 'mycel-startup-check-'))
    try {
      await writeFile(join(probe, 'probe'), 'ok')
    } finally {
      await rm(probe, { recursive: true, force: true })
    }
  } catch (err) {
    const code = (err as { code?: string }).code ?? (err as Error).message
    throw new ConfigInvalidError([
      `MYCEL_TMP_DIR: "${dir}" is not a writable directory (${code}); dag/import spools CAR files there`,
    ])
  }
}

/** Largest CAR header accepted (roots list); Kubo's own readers cap it too. */
const MAX_CAR_HEADER_BYTES = 1024 * 1024

/** A block section holds a CID (well under 1 KiB) and the block. */
const MAX_CAR_SECTION_BYTES = MAX_BLOCK_BYTES + 1024

const CARV2_PRAGMA = Buffer.from('0aa16776657273696f6e02', 'hex')

/**
 * Walks the length prefixes of a spooled CAR (v1, or the v1 payload of a v2) without reading
 * the data, so that a declared length of gigabytes is refused before a parser buffers it.
 */
export async function checkCarFraming(path: string, label: string): Promise<void> {
  const fh = await open(path, 'r')
  try {
    const size = (await fh.stat()).size
    const varintAt = async (pos: number): Promise<[value: number, length: number]> => {
      const buf = Buffer.alloc(9)
      const { bytesRead } = await fh.read(buf, 0, 9, pos)
      let value = 0
      for (let i = 0; i < bytesRead; i++) {
        const byte = buf[i] as number
        value += (byte & 0x7f) * 2 ** (7 * i)
        if ((byte & 0x80) === 0) return [value, i + 1]
      }
      throw new InvalidCarError(`${label} is truncated or malformed: bad length prefix at byte ${pos}`)
    }
    let pos = 0
    let end = size
    let [headerLength, n] = await varintAt(0)
    if (headerLength === CARV2_PRAGMA.length - 1) {
      const head = Buffer.alloc(CARV2_PRAGMA.length + 40)
      await fh.read(head, 0, head.length, 0)
      if (head.subarray(0, CARV2_PRAGMA.length).equals(CARV2_PRAGMA)) {
        // CARv2: a fixed header says where the inner CARv1 lies.
        const dataOffset = Number(head.readBigUInt64LE(CARV2_PRAGMA.length + 16))
        const dataSize = Number(head.readBigUInt64LE(CARV2_PRAGMA.length + 24))
        pos = dataOffset
        end = dataOffset + dataSize
        if (end > size)
          throw new InvalidCarError(`${label} is truncated: its CARv2 header points past the end`)
        ;[headerLength, n] = await varintAt(pos)
      }
    }
    if (headerLength > MAX_CAR_HEADER_BYTES) {
      throw new InvalidCarError(
        `${label} declares a ${headerLength}-byte header (limit ${MAX_CAR_HEADER_BYTES})`,
      )
    }
    if (pos + n + headerLength > end) {
      throw new InvalidCarError(
        `${label} is not a valid CAR: its header claims ${headerLength} bytes, more than the file holds`,
      )
    }
    pos += n + headerLength
    while (pos < end) {
      const [length, m] = await varintAt(pos)
      if (length > MAX_CAR_SECTION_BYTES) {
        throw new InvalidCarError(
          `${label} declares a ${length}-byte block section at byte ${pos}, over the ${MAX_BLOCK_BYTES}-byte block limit; nothing was imported`,
        )
      }
      pos += m + length
    }
    if (pos > end) throw new InvalidCarError(`${label} is truncated: its last block is incomplete`)
  } finally {
    await fh.close()
  }
}

function multihashKey(cid: CID): string {
  return Buffer.from(cid.multihash.bytes).toString('hex')
}

/** The blocks of a CAR file (v1, or v2's inner v1), with parse errors as InvalidCarError. */
async function* readCar(
  path: string,
  label: string,
  onRoots?: (roots: CID[]) => void,
): AsyncGenerator<Block> {
  let blocks: CarBlockIterator
  try {
    blocks = await CarBlockIterator.fromIterable(createReadStream(path))
  } catch (err) {
    throw new InvalidCarError(`${label} is not a valid CAR: ${(err as Error).message}`)
  }
  onRoots?.((await blocks.getRoots()) as unknown as CID[])
  const it = blocks[Symbol.asyncIterator]()
  for (;;) {
    let next: IteratorResult<{ cid: unknown; bytes: Uint8Array }>
    try {
      next = await it.next()
    } catch (err) {
      if (isMycelError(err)) throw err
      throw new InvalidCarError(`${label} is truncated or malformed: ${(err as Error).message}`)
    }
    if (next.done) return
    yield { cid: next.value.cid as CID, bytes: next.value.bytes }
  }
}
