import type { Readable } from 'node:stream'
import { PayloadTooLargeError } from '@mycel/core'
import { All, Controller, Inject, Req, Res } from '@nestjs/common'
import type { Request, Response } from 'express'
import { GatewayRuntime } from '../gateway-runtime.js'
import { type ByteBudget, importToCluster, limitBytes } from '../upload/import.js'
import { multipartCandidates } from '../upload/multipart.js'
import {
  parseDurability,
  parseImportParams,
  type Query,
  queryBool,
  queryValue,
  rejectUnknownOptions,
} from '../upload/params.js'

const RAW_UPLOAD_OPTIONS = new Set(['filename', 'cid-version', 'raw-leaves', 'chunker', 'hash', 'durability'])
const ADD_OPTIONS = new Set([
  'cid-version',
  'raw-leaves',
  'chunker',
  'hash',
  'wrap-with-directory',
  'pin',
  'quiet',
  'quieter',
  'silent',
  'durability',
  // Sent by Kubo's HTTP clients on every call; Mycel's output is always JSON lines.
  'stream-channels',
  'encoding',
])

/**
 * Uploads. Both endpoints stream the body into the UnixFS importer and answer only when every
 * block is durable on the write quorum; on any failure nothing is acknowledged.
 */
@Controller()
export class UploadController {
  constructor(@Inject(GatewayRuntime) private readonly runtime: GatewayRuntime) {}

  /** curl-friendly raw upload: `curl --data-binary @FILE .../mycel/v1/upload` (POST or PUT). */
  @All('mycel/v1/upload')
  async rawUpload(@Req() req: Request, @Res() res: Response): Promise<void> {
    if (req.method !== 'POST' && req.method !== 'PUT') {
      res
        .status(405)
        .set('Allow', 'POST, PUT')
        .type('text/plain')
        .send('use POST or PUT with the file as the body\n')
      return
    }
    const query = req.query as Query
    rejectUnknownOptions(query, RAW_UPLOAD_OPTIONS, '/mycel/v1/upload')
    const params = parseImportParams(query)
    const durability = parseDurability(query, this.runtime.clients.nodes.length)
    this.checkDeclaredLength(req)
    const filename = queryValue(query, 'filename') ?? ''
    const abort = abortOnDisconnect(req, res)
    const budget = this.budget()
    const [entry] = await importToCluster(
      this.runtime.cluster,
      [{ path: filename, content: this.limited(req, budget) }],
      {
        params: { ...params, wrapWithDirectory: false },
        ...durability,
        signal: abort.signal,
        logger: this.runtime.log,
      },
    )
    if (entry === undefined) throw new Error('importer returned no entry')
    res
      .status(201)
      .set('Location', `/ipfs/${entry.cid.toString()}`)
      .json({
        cid: entry.cid.toString(),
        size: budget.received,
        dagSize: Number(entry.size),
        name: filename || undefined,
      })
  }

  /** Kubo RPC `add`: multipart files (and directories), JSON lines of {Name, Hash, Size}. */
  @All('api/v0/add')
  async add(@Req() req: Request, @Res() res: Response): Promise<void> {
    if (req.method !== 'POST') {
      res.status(405).set('Allow', 'POST').json({ Message: 'add requires POST', Code: 0, Type: 'error' })
      return
    }
    const query = req.query as Query
    rejectUnknownOptions(query, ADD_OPTIONS, 'add')
    const params = parseImportParams(query)
    const durability = parseDurability(query, this.runtime.clients.nodes.length)
    const quiet = queryBool(query, 'quiet', false)
    const quieter = queryBool(query, 'quieter', false)
    const silent = queryBool(query, 'silent', false)
    queryBool(query, 'pin', true) // validated; every stored block is kept (no garbage collection yet)
    this.checkDeclaredLength(req)
    const abort = abortOnDisconnect(req, res)
    const budget = this.budget()
    const entries = await importToCluster(
      this.runtime.cluster,
      multipartCandidates(req, (stream) => this.limited(stream, budget)),
      { params, ...durability, signal: abort.signal, logger: this.runtime.log },
    )
    const shown = silent ? [] : quieter ? entries.slice(-1) : entries
    const lines = shown.map((e) =>
      JSON.stringify(
        quiet || quieter
          ? { Hash: e.cid.toString() }
          : { Name: e.path, Hash: e.cid.toString(), Size: e.size.toString() },
      ),
    )
    res
      .status(200)
      .set('X-Chunked-Output', '1')
      .type('application/json')
      .send(lines.length > 0 ? `${lines.join('\n')}\n` : '')
  }

  private checkDeclaredLength(req: Request): void {
    const declared = Number(req.headers['content-length'] ?? Number.NaN)
    if (declared > this.runtime.config.MYCEL_MAX_UPLOAD_BYTES) {
      throw new PayloadTooLargeError(this.runtime.config.MYCEL_MAX_UPLOAD_BYTES)
    }
  }

  private budget(): ByteBudget {
    return { received: 0, limit: this.runtime.config.MYCEL_MAX_UPLOAD_BYTES }
  }

  private limited(source: Readable, budget: ByteBudget): AsyncIterable<Uint8Array> {
    return limitBytes(
      source,
      budget,
      (n) => this.runtime.metrics.bytesIn.inc(n),
      () => new PayloadTooLargeError(budget.limit),
    )
  }
}

/** Aborts the import when the client goes away before the response is sent. */
function abortOnDisconnect(req: Request, res: Response): AbortController {
  const abort = new AbortController()
  const onClose = () => {
    if (!res.writableFinished) abort.abort(new Error('client disconnected'))
  }
  res.on('close', onClose)
  req.on('aborted', onClose)
  return abort
}
