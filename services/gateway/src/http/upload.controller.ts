import type { Readable } from 'node:stream'
import { type ImportedEntry, importToCluster, topLevelRoots } from '@mycel/cluster'
import { PayloadTooLargeError } from '@mycel/core'
import { All, Controller, Inject, Req, Res } from '@nestjs/common'
import type { Request, Response } from 'express'
import { GatewayRuntime } from '../gateway-runtime.js'
import { NodeApi } from '../pins/node-api.js'
import { addOutput, noteDirectories, withEmptyDirectories } from '../upload/add-output.js'
import { type ByteBudget, limitBytes } from '../upload/limit.js'
import { multipartCandidates } from '../upload/multipart.js'
import {
  parseDurabilityOption,
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
  'progress',
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
  constructor(
    @Inject(GatewayRuntime) private readonly runtime: GatewayRuntime,
    @Inject(NodeApi) private readonly api: NodeApi,
  ) {}

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
    const durability = parseDurabilityOption(query)
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
    const durability = parseDurabilityOption(query)
    // quiet and quieter are applied by Kubo's CLI when it prints: the answer is the same.
    queryBool(query, 'quiet', false)
    queryBool(query, 'quieter', false)
    const silent = queryBool(query, 'silent', false)
    const progress = queryBool(query, 'progress', false) && !silent
    const pin = queryBool(query, 'pin', true)
    this.checkDeclaredLength(req)
    const abort = abortOnDisconnect(req, res)
    const budget = this.budget()
    const progressLines = progress ? new ProgressWriter(res) : undefined
    let entries: ImportedEntry[]
    const dirs: string[] = []
    try {
      entries = await importToCluster(
        this.runtime.cluster,
        noteDirectories(
          multipartCandidates(req, (stream, path) => {
            const counted = this.limited(stream, budget)
            return progressLines ? progressLines.track(counted, path) : counted
          }),
          dirs,
        ),
        { params, ...durability, signal: abort.signal, logger: this.runtime.log },
      )
      // As Kubo: the top-level entries (the wrapper, or each file and directory added) are pinned.
      if (pin) {
        for (const root of topLevelRoots(entries, params.wrapWithDirectory)) {
          await this.api.client.pin(root.toString(), {
            durability: queryValue(query, 'durability') ?? '',
            signal: abort.signal,
          })
        }
      }
    } catch (err) {
      // Once progress lines went out the status is sent: the error goes in Kubo's trailer.
      if (progressLines?.started) return progressLines.fail(err)
      throw err
    }
    entries = await withEmptyDirectories(entries, dirs, params.cidVersion)
    const lines = addOutput(entries, silent, dirs).map((e) =>
      JSON.stringify({ Name: e.path, Hash: e.cid.toString(), Size: e.size.toString() }),
    )
    if (progressLines?.started) {
      progressLines.finish(lines)
      return
    }
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

/** Progress reports between two lines, as Kubo sends them (about one per chunk). */
const PROGRESS_EVERY_BYTES = 256 * 1024

/**
 * Kubo's `progress=true` output: `{"Name","Bytes"}` lines while files stream in, then the
 * results. The status line goes out with the first report, so a later failure is reported the
 * way Kubo does, in the `X-Stream-Error` trailer (and as a final error line for readers that
 * cannot see trailers).
 */
class ProgressWriter {
  started = false

  constructor(private readonly res: Response) {}

  async *track(source: AsyncIterable<Uint8Array>, name: string): AsyncGenerator<Uint8Array> {
    let bytes = 0
    let reported = 0
    this.write({ Name: name, Bytes: 0 })
    for await (const chunk of source) {
      bytes += chunk.byteLength
      if (bytes - reported >= PROGRESS_EVERY_BYTES) {
        reported = bytes
        this.write({ Name: name, Bytes: bytes })
      }
      yield chunk
    }
    if (bytes !== reported) this.write({ Name: name, Bytes: bytes })
  }

  finish(lines: string[]): void {
    this.res.end(lines.length > 0 ? `${lines.join('\n')}\n` : '')
  }

  fail(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err)
    this.res.addTrailers({ 'X-Stream-Error': message.replace(/[\r\n]+/g, ' ') })
    this.res.end(`${JSON.stringify({ Message: message, Code: 0, Type: 'error' })}\n`)
  }

  private write(line: Record<string, unknown>): void {
    if (!this.started) {
      this.started = true
      this.res
        .status(200)
        .set({ 'Content-Type': 'application/json', 'X-Chunked-Output': '1', Trailer: 'X-Stream-Error' })
        .flushHeaders()
    }
    this.res.write(`${JSON.stringify(line)}\n`)
  }
}
