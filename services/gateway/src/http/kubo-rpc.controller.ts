import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import { InvalidArgumentError, isAbortError, NotAFileError, VERSION } from '@mycel/core'
import { All, Controller, Inject, Req, Res } from '@nestjs/common'
import type { Request, Response } from 'express'
import { exporter, type UnixFSEntry } from 'ipfs-unixfs-exporter'
import { GatewayRuntime } from '../gateway-runtime.js'
import { tarStream } from '../ipld/tar.js'
import { type Query, queryBool, queryValue, rejectUnknownOptions } from '../upload/params.js'
import { createPeerIdentity } from './peer-identity.js'
import { formatContentPath, parseContentPath, resolvePath } from './resolve.js'
import { streamRpc } from './respond.js'
import { abortOnClose, options, singleArg } from './rpc-args.js'
import { TAR_HOLD_BYTES } from './tar-response.js'

// `output` names the client's destination (Kubo's CLI uses it after the download): no server effect.
const GET_OPTIONS = options('arg', 'output', 'archive', 'compress', 'compression-level', 'progress')
const REPO_STAT_OPTIONS = options('size-only', 'human')

/** Kubo's StorageMax when the datastore has no limit (corerepo.NoLimit, math.MaxUint64). */
const NO_LIMIT = '18446744073709551615'

/** Kubo RPC commands about the node itself (version, id, repo/stat) and `get`. */
@Controller('api/v0')
export class KuboRpcController {
  private readonly identity = createPeerIdentity()

  constructor(@Inject(GatewayRuntime) private readonly runtime: GatewayRuntime) {}

  @All('version')
  version(@Req() req: Request, @Res() res: Response): void {
    if (!requirePost(req, res)) return
    res.json({
      Version: VERSION,
      Commit: '',
      Repo: '',
      System: `${process.arch}/${process.platform}`,
      Golang: '',
    })
  }

  @All('id')
  id(@Req() req: Request, @Res() res: Response): void {
    if (!requirePost(req, res)) return
    res.json({
      ID: this.identity.id,
      PublicKey: this.identity.publicKey,
      Addresses: [],
      AgentVersion: `mycel/${VERSION}`,
      Protocols: [],
      Nodes: this.runtime.nodeStatuses().map((n) => ({ Address: n.address, State: n.state, ID: n.id })),
    })
  }

  /**
   * `repo/stat` over the whole cluster: each storage node's own counts (GetNodeStats, probed
   * now), summed. RepoSize and NumObjects count every replica (physical bytes and blocks, so a
   * block kept 3 times counts 3 times); StorageMax sums the nodes' capacities, or is Kubo's
   * "no limit" when any node has none. Nodes that do not answer are left out of the sums, and
   * X-Mycel-Nodes-Reporting says how many did. `human` only changes Kubo's text output, so the
   * JSON is the same with it, as Kubo's is.
   */
  @All('repo/stat')
  async repoStat(@Req() req: Request, @Res() res: Response): Promise<void> {
    if (!requirePost(req, res)) return
    const query = req.query as Query
    rejectUnknownOptions(query, REPO_STAT_OPTIONS, 'repo/stat')
    const sizeOnly = queryBool(query, 'size-only', false)
    queryBool(query, 'human', false)
    await this.runtime.probeAll()
    const nodes = this.runtime.nodeStatuses()
    const up = nodes.filter((n) => n.reachable)
    const sum = (f: (n: (typeof up)[number]) => number | undefined) =>
      up.reduce((total, n) => total + BigInt(f(n) ?? 0), 0n)
    const unlimited = up.length === 0 || up.some((n) => (n.capacityBytes ?? 0) === 0)
    const storageMax = unlimited ? NO_LIMIT : sum((n) => n.capacityBytes).toString()
    // Written by hand: the sums are 64-bit integers that JSON.stringify cannot carry exactly.
    const body =
      `{"RepoSize":${sum((n) => n.blockBytes)},"StorageMax":${storageMax},` +
      `"NumObjects":${sizeOnly ? 0 : sum((n) => n.blocks)},` +
      `"RepoPath":${JSON.stringify(sizeOnly ? '' : `mycel cluster of ${nodes.length} storage nodes`)},` +
      `"Version":${JSON.stringify(sizeOnly ? '' : `mycel@${VERSION}`)}}\n`
    res
      .status(200)
      .set('X-Mycel-Nodes-Reporting', `${up.length}/${nodes.length}`)
      .type('application/json')
      .send(body)
  }

  /**
   * `get`: the file or directory tree as a TAR stream (Kubo's transport format; Kubo's CLI
   * extracts it), named after the last path element. `archive` changes nothing on the wire (it
   * tells Kubo's CLI to keep the TAR); `compress` gzips the TAR, or, without `archive`, the
   * bytes of a single file, as Kubo does. Failures after the first bytes go in the
   * X-Stream-Error trailer.
   */
  @All('get')
  async get(@Req() req: Request, @Res() res: Response): Promise<void> {
    if (!requirePost(req, res)) return
    const query = req.query as Query
    // kubo-rpc-client sends its option as compressionLevel: the same option under its JS name.
    if (query.compressionLevel !== undefined && query['compression-level'] === undefined) {
      query['compression-level'] = query.compressionLevel
      delete query.compressionLevel
    }
    rejectUnknownOptions(query, GET_OPTIONS, 'get')
    queryBool(query, 'progress', false)
    const archive = queryBool(query, 'archive', false)
    const level = compressionLevel(query)
    const path = parseContentPath(singleArg(query, 'get'))
    const abort = abortOnClose(res)
    const resolved = await resolvePath(this.runtime.cluster, path, abort.signal)
    let entry: UnixFSEntry
    try {
      entry = await exporter(resolved.cid, resolved.store, { signal: abort.signal })
    } finally {
      resolved.done()
    }
    const name = path.segments.at(-1) ?? path.root.toString()
    let body: AsyncIterable<Uint8Array>
    if (level !== undefined && !archive) {
      if (entry.type !== 'file' && entry.type !== 'raw' && entry.type !== 'identity') {
        throw new NotAFileError(
          `get: ${formatContentPath(path)} is a ${entry.type}: compress without archive gzips one file; add archive=true for a .tar.gz`,
        )
      }
      body = gzip(entry.content({ signal: abort.signal, blockReadConcurrency: 8 }), level)
    } else {
      const tar = tarStream(entry, name, resolved.store, { signal: abort.signal })
      body = level === undefined ? tar : gzip(tar, level)
    }
    const headers: Record<string, string> = {
      'Content-Type': level === undefined ? 'application/x-tar' : 'application/gzip',
      'X-Stream-Output': '1',
    }
    if (entry.type !== 'directory') headers['X-Content-Length'] = String(entry.size)
    const failed = await streamRpc(res, body, headers, TAR_HOLD_BYTES)
    if (failed !== undefined && !isAbortError(failed) && !abort.signal.aborted) {
      this.runtime.log.warn(
        { command: 'get', path: formatContentPath(path), err: String(failed) },
        'RPC stream failed mid-way',
      )
    }
  }
}

/** Kubo's compress/compression-level: undefined when not compressing, else a zlib level 1-9. */
function compressionLevel(query: Query): number | undefined {
  const compress = queryBool(query, 'compress', false)
  const text = queryValue(query, 'compression-level')
  if (!compress) {
    if (text !== undefined) throw new InvalidArgumentError('get: compression-level needs compress=true')
    return undefined
  }
  if (text === undefined || text === '-1') return -1
  if (!/^[1-9]$/.test(text)) {
    throw new InvalidArgumentError(`get: compression level must be between 1 and 9 (got "${text}")`)
  }
  return Number(text)
}

/** Bytes through gzip; a source failure ends the iteration with that error. */
function gzip(source: AsyncIterable<Uint8Array>, level: number): AsyncIterable<Uint8Array> {
  const gz = createGzip({ level })
  pipeline(Readable.from(source), gz).catch(() => undefined)
  return gz
}

/** Kubo's RPC accepts only POST (since 0.5, against CSRF); so does Mycel. */
export function requirePost(req: Request, res: Response): boolean {
  if (req.method === 'POST') return true
  res
    .status(405)
    .set('Allow', 'POST')
    .json({ Message: `${req.method} not allowed: the RPC API takes POST`, Code: 0, Type: 'error' })
  return false
}
