import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { Readable } from 'node:stream'
import { describe, it } from 'node:test'
import { CarWriter } from '@ipld/car/writer'
import * as dagPb from '@ipld/dag-pb'
import type { ClusterBlockstore } from '@mycel/cluster'
import { BlockNotFoundError, CID, isMycelError } from '@mycel/core'
import { httpStatusOf } from '@mycel/proto'
import fc from 'fast-check'
import { UnixFS } from 'ipfs-unixfs'
import { create as createDigest } from 'multiformats/hashes/digest'
import { parseRange } from './http/range.js'
import { formatContentPath, parseContentPath, readEntries, resolveContentPath } from './http/resolve.js'
import { CarSpool } from './ipld/car.js'
import { multipartCandidates } from './upload/multipart.js'

/** Every run must settle within this (no hang on any input); inputs are bounded in size. */
const NO_HANG = fc.timeout(10_000)

/**
 * What the error filter would answer for `err`: a Mycel error with a 4xx status (501 for a codec
 * the gateway cannot read), never an unexpected error, which would be a 500.
 */
function assertClientError(err: unknown): void {
  assert.ok(
    isMycelError(err),
    `not a Mycel error, would be a 500: ${String(err)} ${(err as Error)?.stack ?? ''}`,
  )
  assert.notEqual(httpStatusOf(err), 500, String(err))
}

function sha256Cid(codec: number, bytes: Uint8Array, version: 0 | 1 = 1): CID {
  return CID.create(version, codec, createDigest(0x12, createHash('sha256').update(bytes).digest())) as CID
}

describe('Range header (property-based)', () => {
  it('any header either is ignored, names bytes inside the content, or is 416', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.stringMatching(/^ ?bytes ?= ?(-?\d{0,20}-?\d{0,20},?){1,3}$/),
          fc
            .tuple(fc.bigInt({ min: 0n, max: 2n ** 70n }), fc.bigInt({ min: 0n, max: 2n ** 70n }))
            .map(([a, b]) => `bytes=${a}-${b}`),
        ),
        fc.nat(10 ** 12),
        (header, size) => {
          try {
            const r = parseRange(header, size)
            if (r === undefined) return
            assert.ok(Number.isSafeInteger(r.start) && Number.isSafeInteger(r.end))
            assert.ok(
              r.start >= 0 && r.start <= r.end && r.end <= size - 1,
              `${header} / ${size}: ${JSON.stringify(r)}`,
            )
          } catch (err) {
            assert.equal(httpStatusOf(err), 416)
          }
        },
      ),
      { numRuns: 5000 },
    )
  })

  it('a satisfiable range round-trips, clamped to the size', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 ** 12 }), fc.nat(), fc.nat(), fc.nat(), (size, a, b, n) => {
        const start = a % size
        const end = start + b
        assert.deepEqual(parseRange(`bytes=${start}-${end}`, size), { start, end: Math.min(end, size - 1) })
        assert.deepEqual(parseRange(`bytes=${start}-`, size), { start, end: size - 1 })
        const suffix = (n % size) + 1
        assert.deepEqual(parseRange(`bytes=-${suffix}`, size), { start: size - suffix, end: size - 1 })
      }),
      { numRuns: 2000 },
    )
  })
})

describe('content paths (property-based)', () => {
  const segment = fc
    .string({ minLength: 1, maxLength: 20 })
    .filter((s) => !s.includes('/') && s !== '.' && s !== '..')
  const cid = fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => sha256Cid(0x70, b))

  it('any argument parses or is refused with a 400', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.tuple(cid, fc.array(fc.string(), { maxLength: 4 })).map(([c, s]) => `/ipfs/${c}/${s.join('/')}`),
          fc.constantFrom('/ipns/x', '/', '//', '/ipfs/', '/ipfs//a'),
        ),
        (arg) => {
          try {
            const path = parseContentPath(arg)
            assert.ok(path.segments.every((s) => s !== '' && s !== '.' && s !== '..' && !s.includes('/')))
          } catch (err) {
            assertClientError(err)
            assert.equal(httpStatusOf(err), 400)
          }
        },
      ),
      { numRuns: 3000 },
    )
  })

  it('round-trips with and without /ipfs/', () => {
    fc.assert(
      fc.property(cid, fc.array(segment, { maxLength: 5 }), (root, segments) => {
        const text = formatContentPath({ root, segments })
        for (const arg of [text, text.slice('/ipfs/'.length)]) {
          const back = parseContentPath(arg)
          assert.ok(back.root.equals(root))
          assert.deepEqual(back.segments, segments)
        }
      }),
      { numRuns: 1000 },
    )
  })
})

/** A request whose body is `body`, as busboy and the multipart reader see it. */
function fakeRequest(body: Uint8Array, contentType: string): IncomingMessage {
  const req = Readable.from([Buffer.from(body)]) as unknown as IncomingMessage & { complete: boolean }
  req.headers = { 'content-type': contentType }
  req.complete = false
  req.once('end', () => {
    req.complete = true
  })
  return req
}

async function readParts(req: IncomingMessage): Promise<Array<{ path: string; bytes?: Buffer }>> {
  const parts: Array<{ path: string; bytes?: Buffer }> = []
  for await (const part of multipartCandidates(req, (stream) => stream)) {
    if (!('content' in part) || part.content === undefined) {
      parts.push({ path: part.path ?? '' })
      continue
    }
    const chunks: Uint8Array[] = []
    for await (const c of part.content as AsyncIterable<Uint8Array>) chunks.push(c)
    parts.push({ path: part.path ?? '', bytes: Buffer.concat(chunks) })
  }
  return parts
}

function multipartBody(boundary: string, files: Array<{ name: string; bytes: Uint8Array }>): Buffer {
  const out: Buffer[] = []
  for (const f of files) {
    out.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${encodeURIComponent(f.name)}"\r\n` +
          'Content-Type: application/octet-stream\r\n\r\n',
      ),
      Buffer.from(f.bytes),
      Buffer.from('\r\n'),
    )
  }
  out.push(Buffer.from(`--${boundary}--\r\n`))
  return Buffer.concat(out)
}

describe('multipart uploads (property-based)', () => {
  const files = fc.array(
    fc.record({
      name: fc.string({ minLength: 1, maxLength: 30 }),
      bytes: fc.uint8Array({ maxLength: 5000 }),
    }),
    { minLength: 1, maxLength: 5 },
  )

  it('Kubo-style bodies round-trip: every part, name and byte', async () => {
    await fc.assert(
      fc.asyncProperty(files, async (input) => {
        const boundary = 'mycelBoundary7MA4YWxkTrZu0gW'
        const parts = await readParts(
          fakeRequest(multipartBody(boundary, input), `multipart/form-data; boundary=${boundary}`),
        )
        assert.deepEqual(
          parts.map((p) => ({ name: p.path, bytes: new Uint8Array(p.bytes ?? []) })),
          input.map((f) => ({ name: f.name, bytes: new Uint8Array(f.bytes) })),
        )
      }),
      { numRuns: 300, plugins: [NO_HANG] },
    )
  })

  it('garbage, truncated and mutated bodies are read or refused with a 400, never hang', async () => {
    const boundary = 'b0undary'
    const body = fc.oneof(
      fc.uint8Array({ maxLength: 3000 }),
      fc.tuple(files, fc.nat()).map(([f, cut]) => {
        const whole = multipartBody(boundary, f)
        return whole.subarray(0, cut % (whole.length + 1))
      }),
      fc.tuple(files, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([f, at, byte]) => {
        const whole = Buffer.from(multipartBody(boundary, f))
        whole[at % whole.length] = byte
        return whole
      }),
    )
    const contentType = fc.constantFrom(
      `multipart/form-data; boundary=${boundary}`,
      'multipart/form-data',
      'multipart/form-data; boundary=',
      `multipart/mixed; boundary=${boundary}`,
      'application/octet-stream',
    )
    await fc.assert(
      fc.asyncProperty(body, contentType, async (bytes, type) => {
        try {
          await readParts(fakeRequest(bytes, type))
        } catch (err) {
          assertClientError(err)
        }
      }),
      { numRuns: 1000, plugins: [NO_HANG] },
    )
  })
})

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes
}

async function carBytes(roots: CID[], blocks: Array<{ cid: CID; bytes: Uint8Array }>): Promise<Buffer> {
  const { writer, out } = CarWriter.create(roots)
  const collected = (async () => {
    const chunks: Uint8Array[] = []
    for await (const c of out) chunks.push(c)
    return Buffer.concat(chunks)
  })()
  for (const b of blocks) await writer.put(b)
  await writer.close()
  return collected
}

describe('CAR import (property-based)', () => {
  const blocks = fc
    .array(fc.uint8Array({ maxLength: 4000 }), { minLength: 1, maxLength: 8 })
    .map((list) => list.map((bytes) => ({ cid: sha256Cid(0x55, bytes), bytes })))

  it('a valid CAR is accepted with every block', async () => {
    await fc.assert(
      fc.asyncProperty(blocks, async (list) => {
        const spool = new CarSpool(tmpdir())
        try {
          const car = await spool.add(once(await carBytes([list[0]?.cid as CID], list)), 1024 * 1024)
          assert.equal(car.blocks, list.length)
          assert.equal(
            car.bytes,
            list.reduce((n, b) => n + b.bytes.byteLength, 0),
          )
          assert.ok(car.roots[0]?.equals(list[0]?.cid))
        } finally {
          await spool.dispose()
        }
      }),
      { numRuns: 150, plugins: [NO_HANG] },
    )
  })

  it('garbage, truncated and mutated CARs are accepted only if valid, else refused with a 400', async () => {
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 2000 }),
      fc
        .tuple(blocks, fc.nat())
        .chain(([list, cut]) =>
          fc
            .constant({ list, cut })
            .map(({ list: l, cut: c }) => ({ kind: 'truncate' as const, list: l, at: c, byte: 0 })),
        ),
      fc.tuple(blocks, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([list, at, byte]) => ({
        kind: 'mutate' as const,
        list,
        at,
        byte,
      })),
    )
    await fc.assert(
      fc.asyncProperty(input, async (x) => {
        let bytes: Uint8Array
        if (x instanceof Uint8Array) bytes = x
        else {
          const whole = Buffer.from(await carBytes([x.list[0]?.cid as CID], x.list))
          if (x.kind === 'truncate') bytes = whole.subarray(0, x.at % (whole.length + 1))
          else {
            whole[x.at % whole.length] = x.byte
            bytes = whole
          }
        }
        const spool = new CarSpool(tmpdir())
        try {
          await spool.add(once(bytes), 1024 * 1024)
        } catch (err) {
          assertClientError(err)
          assert.equal(httpStatusOf(err), 400)
        } finally {
          await spool.dispose()
        }
      }),
      { numRuns: 600, plugins: [NO_HANG] },
    )
  })
})

/** A blockstore of the given blocks, as the exporter and the path resolver read it. */
function memoryCluster(blocks: Array<{ cid: CID; bytes: Uint8Array }>): ClusterBlockstore {
  const byKey = new Map(blocks.map((b) => [Buffer.from(b.cid.multihash.bytes).toString('hex'), b.bytes]))
  const getBlock = async (cid: CID) => {
    const bytes = byKey.get(Buffer.from(cid.multihash.bytes).toString('hex'))
    if (bytes === undefined) throw new BlockNotFoundError(cid.toString())
    return bytes
  }
  return {
    getBlock,
    async *get(cid: CID) {
      yield await getBlock(cid)
    },
  } as unknown as ClusterBlockstore
}

/**
 * Resolves a path and reads what the gateway reads before it answers (a directory's entries);
 * a file's bytes stream after the status is sent, so their errors only need to settle (the
 * connection is then cut): they are read too, and must not hang.
 */
async function serveAll(cluster: ClusterBlockstore, root: CID, segments: string[]): Promise<void> {
  const signal = AbortSignal.timeout(10_000)
  const entry = await resolveContentPath(cluster, { root, segments }, signal, [], [])
  for await (const child of readEntries(entry, 'test', signal)) void child.name
  if (entry.type === 'file' || entry.type === 'raw' || entry.type === 'identity') {
    try {
      for await (const chunk of entry.content({ signal })) void chunk
    } catch {
      // After the headers: a cut connection, not an error status.
    }
  }
}

describe('dag-pb and UnixFS decoding of stored blocks (property-based)', () => {
  /** Blocks a client can store (block/put, dag/import verify only the hash): dag-pb nodes with any Data. */
  const node = fc.record({
    data: fc.option(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc
          .record({
            type: fc.constantFrom(
              'raw',
              'directory',
              'file',
              'metadata',
              'symlink',
              'hamt-sharded-directory',
            ),
            data: fc.option(fc.uint8Array({ maxLength: 100 }), { nil: undefined }),
            blockSizes: fc.array(fc.bigInt({ min: 0n, max: 2n ** 40n }), { maxLength: 4 }),
            fanout: fc.option(fc.bigInt({ min: 0n, max: 1024n }), { nil: undefined }),
          })
          .map((u) => new UnixFS(u as ConstructorParameters<typeof UnixFS>[0]).marshal()),
      ),
      { nil: undefined },
    ),
    links: fc.array(
      fc.record({
        name: fc.option(fc.string({ maxLength: 10 }), { nil: undefined }),
        to: fc.nat(),
        size: fc.nat(),
      }),
      {
        maxLength: 4,
      },
    ),
  })

  it('any dag-pb DAG resolves and reads, or is refused with a client error', async () => {
    // As in the gateway (keepServingOnUnhandledRejections): the exporter drops the promises of
    // nested reads whose errors it also hands to the reader. They are collected, not fatal.
    const runner = process.listeners('unhandledRejection')
    process.removeAllListeners('unhandledRejection')
    const dropped: unknown[] = []
    process.on('unhandledRejection', (reason) => dropped.push(reason))
    try {
      await checkDagPb()
      // Reads the reader gave up on finish in the background (from memory: quickly).
      await new Promise((r) => setTimeout(r, 1000))
    } finally {
      process.removeAllListeners('unhandledRejection')
      for (const l of runner) process.on('unhandledRejection', l)
    }
    for (const reason of dropped) {
      assert.ok(
        isMycelError(reason) || (reason as { code?: string }).code === 'ERR_NOT_UNIXFS',
        `unexpected dropped rejection: ${String(reason)}`,
      )
    }
  })

  async function checkDagPb(): Promise<void> {
    await fc.assert(
      fc.asyncProperty(
        fc.array(node, { minLength: 1, maxLength: 5 }),
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 3 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.array(
          fc.string({ minLength: 1, maxLength: 10 }).filter((s) => !s.includes('/')),
          { maxLength: 2 },
        ),
        async (nodes, leaves, garbage, segments) => {
          // Leaves first, then nodes linking to anything built before them (and garbage blocks).
          const blocks: Array<{ cid: CID; bytes: Uint8Array }> = leaves.map((bytes) => ({
            cid: sha256Cid(0x55, bytes),
            bytes,
          }))
          const junk = { cid: sha256Cid(0x70, garbage), bytes: garbage }
          blocks.push(junk)
          for (const n of nodes) {
            const links = n.links.map((l) => {
              const target = blocks[l.to % blocks.length] as { cid: CID }
              return { Hash: target.cid, ...(l.name === undefined ? {} : { Name: l.name }), Tsize: l.size }
            })
            let bytes: Uint8Array
            try {
              bytes = dagPb.encode(
                dagPb.prepare({ ...(n.data === undefined ? {} : { Data: n.data }), Links: links }),
              )
            } catch {
              continue
            }
            blocks.push({ cid: sha256Cid(0x70, bytes), bytes })
          }
          const cluster = memoryCluster(blocks)
          for (const root of [blocks.at(-1)?.cid as CID, junk.cid]) {
            for (const path of [[], segments]) {
              try {
                await serveAll(cluster, root, path)
              } catch (err) {
                assertClientError(err)
              }
            }
          }
        },
      ),
      { numRuns: 400, plugins: [NO_HANG] },
    )
  }
})
