import * as dagPb from '@ipld/dag-pb'
import {
  BlockTooLargeError,
  CID,
  CODEC_DAG_PB,
  CODEC_RAW,
  InvalidArgumentError,
  isAbortError,
  isMycelError,
  MAX_BLOCK_BYTES,
  NotAFileError,
  PayloadTooLargeError,
} from '@mycel/core'
import { All, Controller, Inject, Req, Res } from '@nestjs/common'
import type { Request, Response } from 'express'
import { UnixFS } from 'ipfs-unixfs'
import { sha256 } from 'multiformats/hashes/sha2'
import { GatewayRuntime } from '../gateway-runtime.js'
import { CarSpool, carBytes } from '../ipld/car.js'
import { walkDag } from '../ipld/dag-walk.js'
import { assertDecodable } from '../ipld/links.js'
import { NodeApi } from '../pins/node-api.js'
import { limitBytes } from '../upload/limit.js'
import { multipartCandidates } from '../upload/multipart.js'
import { type Query, queryBool, queryValue, rejectUnknownOptions } from '../upload/params.js'
import { requirePost } from './kubo-rpc.controller.js'
import { formatContentPath, parseContentPath, readEntries, resolveContentPath } from './resolve.js'
import { streamRpc } from './respond.js'
import { abortOnClose, nonNegativeInt, options, singleArg } from './rpc-args.js'

const CAT_OPTIONS = options('arg', 'offset', 'length', 'progress')
const BLOCK_GET_OPTIONS = options('arg')
const BLOCK_STAT_OPTIONS = options('arg')
const BLOCK_PUT_OPTIONS = options('cid-codec', 'mhtype', 'mhlen', 'format', 'pin', 'allow-big-block')
const DAG_EXPORT_OPTIONS = options('arg', 'progress')
const DAG_IMPORT_OPTIONS = options('pin-roots', 'silent', 'stats', 'allow-big-block')
const LS_OPTIONS = options('arg', 'headers', 'resolve-type', 'size', 'stream')

/** Kubo's `block put` limit without `allow-big-block` (its soft limit is 1 MiB). */
const KUBO_SOFT_BLOCK_LIMIT = 1024 * 1024

/** Blocks of one block/put request held while their writes are in flight. */
const PUT_WINDOW = 16

/** Block writes in flight during a CAR import (as the importer's blockWriteConcurrency). */
const IMPORT_WRITE_CONCURRENCY = 32

/**
 * Kubo RPC commands over blocks and DAGs: cat, ls, block/get|put|stat, dag/export|import.
 * Every option is checked; an unknown one is refused with 400, as add does.
 */
@Controller('api/v0')
export class KuboDagController {
  constructor(
    @Inject(GatewayRuntime) private readonly runtime: GatewayRuntime,
    @Inject(NodeApi) private readonly api: NodeApi,
  ) {}

  /** `cat`: the bytes of a UnixFS file or raw block, from `offset`, at most `length`. */
  @All('cat')
  async cat(@Req() req: Request, @Res() res: Response): Promise<void> {
    if (!requirePost(req, res)) return
    const query = req.query as Query
    rejectUnknownOptions(query, CAT_OPTIONS, 'cat')
    queryBool(query, 'progress', false)
    const path = parseContentPath(singleArg(query, 'cat'))
    const offset = nonNegativeInt(query, 'offset', 0)
    const length = nonNegativeInt(query, 'length', Number.MAX_SAFE_INTEGER)
    const abort = abortOnClose(res)
    const entry = await resolveContentPath(this.runtime.cluster, path, abort.signal)
    if (entry.type === 'directory') {
      throw new NotAFileError(`${formatContentPath(path)} is a directory; cat reads files`)
    }
    if (entry.type !== 'file' && entry.type !== 'raw' && entry.type !== 'identity') {
      throw new NotAFileError(`${formatContentPath(path)} is a ${entry.type} node, not a file`)
    }
    const size = Number(entry.size)
    const start = Math.min(offset, size)
    const count = Math.min(length, size - start)
    const content: AsyncIterable<Uint8Array> =
      count === 0
        ? (async function* () {})()
        : entry.content({ offset: start, length: count, signal: abort.signal, blockReadConcurrency: 8 })
    // Kubo announces the length in X-Content-Length and streams chunked, so that a block that
    // fails mid-way can still be reported in the X-Stream-Error trailer.
    const failed = await streamRpc(res, content, {
      'Content-Type': 'text/plain',
      'X-Stream-Output': '1',
      'X-Content-Length': String(count),
    })
    if (failed !== undefined) this.logStreamFailure('cat', entry.cid, failed, abort)
  }

  /** `ls`: the links of a UnixFS directory (or a file's chunks), in Kubo's {Objects:[…]} shape. */
  @All('ls')
  async ls(@Req() req: Request, @Res() res: Response): Promise<void> {
    if (!requirePost(req, res)) return
    const query = req.query as Query
    rejectUnknownOptions(query, LS_OPTIONS, 'ls')
    for (const b of ['headers', 'resolve-type', 'size', 'stream']) queryBool(query, b, true)
    const arg = singleArg(query, 'ls')
    const path = parseContentPath(arg)
    const abort = abortOnClose(res)
    const entry = await resolveContentPath(this.runtime.cluster, path, abort.signal)
    const links: Array<{ Name: string; Hash: string; Size: number; Type: number; Target: string }> = []
    if (entry.type === 'directory') {
      for await (const child of readEntries(entry, arg, abort.signal)) {
        // Kubo's unixfs types: 1 directory, 2 file (a raw leaf reads as a file).
        links.push({
          Name: child.name,
          Hash: child.cid.toString(),
          Size: Number(child.size),
          Type: await this.unixfsType(child.cid as unknown as CID, abort.signal),
          Target: '',
        })
      }
    } else if (entry.type === 'file' && entry.cid.code === CODEC_DAG_PB) {
      for (const l of dagPb.decode(await this.runtime.cluster.getBlock(entry.cid, abort)).Links) {
        links.push({
          Name: l.Name ?? '',
          Hash: l.Hash.toString(),
          Size: Number(l.Tsize ?? 0),
          Type: 2,
          Target: '',
        })
      }
    }
    res.status(200).json({ Objects: [{ Hash: arg, Links: links }] })
  }

  /** The verified block named by `arg`, for block/get and block/stat; undefined once a 405 is sent. */
  private async readBlockArg(
    req: Request,
    res: Response,
    options: ReadonlySet<string>,
    command: string,
  ): Promise<{ cid: CID; bytes: Uint8Array } | undefined> {
    if (!requirePost(req, res)) return undefined
    const query = req.query as Query
    rejectUnknownOptions(query, options, command)
    const cid = blockArg(query, command)
    return { cid, bytes: await this.runtime.cluster.getBlock(cid, abortOnClose(res)) }
  }

  /** `block/get`: the raw bytes of one block, verified. */
  @All('block/get')
  async blockGet(@Req() req: Request, @Res() res: Response): Promise<void> {
    const block = await this.readBlockArg(req, res, BLOCK_GET_OPTIONS, 'block/get')
    if (block === undefined) return
    const { bytes } = block
    res.status(200).set('Content-Type', 'application/octet-stream').send(Buffer.from(bytes))
  }

  /** `block/stat`: {Key, Size} of one block (read and verified, so Size is what is stored). */
  @All('block/stat')
  async blockStat(@Req() req: Request, @Res() res: Response): Promise<void> {
    const block = await this.readBlockArg(req, res, BLOCK_STAT_OPTIONS, 'block/stat')
    if (block === undefined) return
    const { cid, bytes } = block
    res.status(200).json({ Key: cid.toString(), Size: bytes.byteLength })
  }

  /**
   * `block/put`: each multipart part becomes one block, hashed here and written at the write
   * quorum; the answer ({Key, Size} per block) goes out only when every block is durable.
   */
  @All('block/put')
  async blockPut(@Req() req: Request, @Res() res: Response): Promise<void> {
    if (!requirePost(req, res)) return
    const query = req.query as Query
    rejectUnknownOptions(query, BLOCK_PUT_OPTIONS, 'block/put')
    const { codec, version } = blockPutFormat(query)
    queryBool(query, 'pin', false) // validated; every stored block is kept (no garbage collection yet)
    const limit = queryBool(query, 'allow-big-block', false) ? MAX_BLOCK_BYTES : KUBO_SOFT_BLOCK_LIMIT
    const abort = abortOnClose(res)
    const session = this.runtime.cluster.newWriteSession()
    const onAbort = () => session.abort(new Error('block/put aborted: client disconnected'))
    abort.signal.addEventListener('abort', onAbort, { once: true })
    const lines: string[] = []
    try {
      // Blocks wait in memory only until written: at most PUT_WINDOW of them at a time.
      const writes = new Set<Promise<void>>()
      let failure: unknown
      const parts = multipartCandidates(req, (stream) => {
        const budget = { received: 0, limit }
        return limitBytes(
          stream,
          budget,
          (n) => this.runtime.metrics.bytesIn.inc(n),
          () => new BlockTooLargeError(budget.received, limit),
        )
      })
      for await (const part of parts) {
        if (!('content' in part) || part.content === undefined) {
          throw new InvalidArgumentError('block/put takes files, not directories')
        }
        const chunks: Uint8Array[] = []
        for await (const chunk of part.content as AsyncIterable<Uint8Array>) chunks.push(chunk)
        const bytes = Buffer.concat(chunks)
        if (codec === CODEC_DAG_PB) {
          try {
            dagPb.decode(bytes)
          } catch (err) {
            throw new InvalidArgumentError(
              `block/put: the data is not a valid dag-pb node (${(err as Error).message})`,
            )
          }
        }
        const cid = CID.create(version, codec, await sha256.digest(bytes)) as CID
        const write: Promise<void> = session.put(cid, bytes).then(
          () => {
            writes.delete(write)
          },
          (err: unknown) => {
            writes.delete(write)
            failure ??= err
          },
        )
        writes.add(write)
        if (writes.size >= PUT_WINDOW) await Promise.race(writes)
        if (failure !== undefined) throw failure
        lines.push(JSON.stringify({ Key: cid.toString(), Size: bytes.byteLength }))
      }
      await Promise.all(writes)
      if (failure !== undefined) throw failure
      await session.close()
    } catch (err) {
      session.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    } finally {
      abort.signal.removeEventListener('abort', onAbort)
    }
    // One value per block, streamed in Kubo (X-Chunked-Output).
    res
      .status(200)
      .set('X-Chunked-Output', '1')
      .type('application/json')
      .send(`${lines.join('\n')}\n`)
  }

  /** `dag/export`: a CARv1 of the whole DAG under the root, depth first, each block once. */
  @All('dag/export')
  async dagExport(@Req() req: Request, @Res() res: Response): Promise<void> {
    if (!requirePost(req, res)) return
    const query = req.query as Query
    rejectUnknownOptions(query, DAG_EXPORT_OPTIONS, 'dag/export')
    queryBool(query, 'progress', false)
    const root = blockArg(query, 'dag/export')
    const abort = abortOnClose(res)
    const cluster = this.runtime.cluster
    // The root is read before the status goes out, so a missing root is a clean 404.
    const rootBytes = await cluster.getBlock(root, abort)
    const blocks = walkDag(
      { cid: root, bytes: rootBytes },
      (cid, signal) => cluster.getBlock(cid, { signal }),
      {
        scope: 'all',
        dups: false,
        signal: abort.signal,
      },
    )
    const failed = await streamRpc(res, carBytes([root], blocks), {
      'Content-Type': 'application/vnd.ipld.car; version=1',
      'X-Stream-Output': '1',
    })
    if (failed !== undefined) this.logStreamFailure('dag/export', root, failed, abort)
  }

  /**
   * `dag/import`: CAR files as multipart parts. Every block of every CAR is verified before any
   * is stored (spilled to a temp file meanwhile); one bad block rejects the whole request.
   */
  @All('dag/import')
  async dagImport(@Req() req: Request, @Res() res: Response): Promise<void> {
    if (!requirePost(req, res)) return
    const query = req.query as Query
    rejectUnknownOptions(query, DAG_IMPORT_OPTIONS, 'dag/import')
    const pinRoots = queryBool(query, 'pin-roots', true)
    const silent = queryBool(query, 'silent', false)
    const stats = queryBool(query, 'stats', false)
    const maxBlock = queryBool(query, 'allow-big-block', false) ? MAX_BLOCK_BYTES : KUBO_SOFT_BLOCK_LIMIT
    const maxUpload = this.runtime.config.MYCEL_MAX_UPLOAD_BYTES
    const declared = Number(req.headers['content-length'] ?? Number.NaN)
    if (declared > maxUpload) throw new PayloadTooLargeError(maxUpload)
    const abort = abortOnClose(res)
    const spool = new CarSpool(this.runtime.config.MYCEL_TMP_DIR)
    const budget = { received: 0, limit: maxUpload }
    const lines: string[] = []
    try {
      for await (const part of multipartCandidates(req, (stream) =>
        limitBytes(
          stream,
          budget,
          (n) => this.runtime.metrics.bytesIn.inc(n),
          () => new PayloadTooLargeError(maxUpload),
        ),
      )) {
        if (!('content' in part) || part.content === undefined) {
          throw new InvalidArgumentError('dag/import takes CAR files, not directories')
        }
        await spool.add(part.content as AsyncIterable<Uint8Array>, maxBlock)
      }
      // Everything verified: now store, at the write quorum, and answer only when all is durable.
      const session = this.runtime.cluster.newWriteSession()
      const onAbort = () => session.abort(new Error('dag/import aborted: client disconnected'))
      abort.signal.addEventListener('abort', onAbort, { once: true })
      try {
        await spool.store(session, IMPORT_WRITE_CONCURRENCY, abort.signal)
        await session.close()
      } catch (err) {
        session.abort(err instanceof Error ? err : new Error(String(err)))
        throw err
      } finally {
        abort.signal.removeEventListener('abort', onAbort)
      }
      if (pinRoots) {
        // As Kubo: every root is pinned (the pin checks its whole DAG is stored); a root that
        // cannot be pinned is reported in its line, and the import itself still stands.
        const reported = new Set<string>()
        for (const car of spool.cars) {
          for (const root of car.roots) {
            if (reported.has(root.toString())) continue
            reported.add(root.toString())
            let pinError = await this.rootProblem(spool, root, abort.signal)
            if (pinError === '') {
              try {
                await this.api.client.pin(root.toString(), { signal: abort.signal })
              } catch (err) {
                pinError = `pinning ${root.toString()}: ${(err as Error).message}`
              }
            }
            if (!silent) {
              lines.push(JSON.stringify({ Root: { Cid: { '/': root.toString() }, PinErrorMsg: pinError } }))
            }
          }
        }
      }
      if (stats && !silent) {
        const BlockCount = spool.cars.reduce((n, c) => n + c.blocks, 0)
        const BlockBytesCount = spool.cars.reduce((n, c) => n + c.bytes, 0)
        lines.push(JSON.stringify({ Stats: { BlockCount, BlockBytesCount } }))
      }
      this.runtime.log.info(
        { cars: spool.cars.length, blocks: spool.cars.reduce((n, c) => n + c.blocks, 0) },
        'dag import complete',
      )
    } finally {
      await spool.dispose()
    }
    res
      .status(200)
      .set('X-Chunked-Output', '1')
      .type('application/json')
      .send(lines.length > 0 ? `${lines.join('\n')}\n` : '')
  }

  /** Kubo's ls Type: 1 for a directory (plain or HAMT), 2 for anything else read as a file. */
  private async unixfsType(cid: CID, signal: AbortSignal): Promise<number> {
    if (cid.code !== CODEC_DAG_PB) return 2
    const bytes = await this.runtime.cluster.getBlock(cid, { signal })
    assertDecodable(cid, bytes)
    const node = dagPb.decode(bytes)
    if (node.Data === undefined) return 2
    const type = UnixFS.unmarshal(node.Data).type
    return type === 'directory' || type === 'hamt-sharded-directory' ? 1 : 2
  }

  /** Kubo pins the roots of an import; a root that is nowhere cannot be, and it says so. */
  private async rootProblem(spool: CarSpool, root: CID, signal: AbortSignal): Promise<string> {
    if (await spool.containsRoot(root)) return ''
    try {
      await this.runtime.cluster.getBlock(root, { signal })
      return ''
    } catch (err) {
      if (isMycelError(err) && err.code === 'BLOCK_NOT_FOUND') {
        return `root ${root.toString()} is neither in the CAR nor stored in the cluster`
      }
      return `root ${root.toString()} could not be checked: ${(err as Error).message}`
    }
  }

  private logStreamFailure(command: string, what: unknown, err: unknown, abort: AbortController): void {
    // Headers are gone: the client learns of the failure from the X-Stream-Error trailer.
    if (isAbortError(err) || abort.signal.aborted) return
    this.runtime.log.warn({ command, cid: String(what), err: String(err) }, 'RPC stream failed mid-way')
  }
}

/** A block command's argument: a CID or /ipfs/CID, with no path below it. */
function blockArg(query: Query, command: string): CID {
  const path = parseContentPath(singleArg(query, command))
  if (path.segments.length > 0) {
    throw new InvalidArgumentError(`${command}: takes a CID, not a path (got ${formatContentPath(path)})`)
  }
  return path.root
}

/**
 * Kubo's block put options: cid-codec (raw, the default, or dag-pb), the deprecated format
 * ("v0" means dag-pb CIDv0), mhtype sha2-256, mhlen 32. Anything else is refused by name.
 */
function blockPutFormat(query: Query): { codec: number; version: 0 | 1 } {
  const mhtype = queryValue(query, 'mhtype') ?? 'sha2-256'
  if (mhtype !== 'sha2-256')
    throw new InvalidArgumentError(`block/put: mhtype "${mhtype}" is not supported; use sha2-256`)
  const mhlen = queryValue(query, 'mhlen') ?? '-1'
  if (mhlen !== '-1' && mhlen !== '32')
    throw new InvalidArgumentError(`block/put: mhlen must be 32 for sha2-256 (got "${mhlen}")`)
  const codecName = queryValue(query, 'cid-codec')
  const format = queryValue(query, 'format')
  if (codecName !== undefined && format !== undefined) {
    throw new InvalidArgumentError('block/put: use either "cid-codec" or the deprecated "format", not both')
  }
  if (format !== undefined) {
    if (format === 'v0') return { codec: CODEC_DAG_PB, version: 0 }
    if (format === 'raw') return { codec: CODEC_RAW, version: 1 }
    if (format === 'dag-pb' || format === 'protobuf') return { codec: CODEC_DAG_PB, version: 1 }
    throw new InvalidArgumentError(`block/put: format "${format}" is not supported; use v0, raw or dag-pb`)
  }
  if (codecName === undefined || codecName === 'raw') return { codec: CODEC_RAW, version: 1 }
  if (codecName === 'dag-pb') return { codec: CODEC_DAG_PB, version: 1 }
  throw new InvalidArgumentError(`block/put: cid-codec "${codecName}" is not supported; use raw or dag-pb`)
}
