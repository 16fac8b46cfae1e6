import { createHash } from 'node:crypto'
import { type CID, InvalidArgumentError, UnsupportedFormatError } from '@mycel/core'
import type { Request, Response } from 'express'
import type { GatewayRuntime } from '../gateway-runtime.js'
import { pipeCar } from '../ipld/car.js'
import { type Block, type DagScope, walkDag } from '../ipld/dag-walk.js'
import { fileSizeOf } from '../ipld/links.js'
import { CODEC_MEDIA_TYPES, type CodecFormat } from './codec.js'
import { type ContentPath, headerContentPath, resolveContentPath } from './resolve.js'
import { etagMatches, sendBytes } from './respond.js'

/** Content is addressed by hash, so a response for a CID never changes (IPFS gateway spec). */
export const IMMUTABLE = 'public, max-age=29030400, immutable'

/** Multihash code of the identity "hash". */
const IDENTITY_CODE = 0x00

/**
 * Headers every /ipfs response carries, whatever its format: immutable caching, the content path
 * and the CIDs along it, and Vary because one URL serves files, raw blocks and CARs by Accept.
 */
export function setContentPathHeaders(res: Response, requestPath: string, roots: readonly CID[]): void {
  res.set({
    'Cache-Control': IMMUTABLE,
    'X-Ipfs-Path': requestPath,
    'X-Ipfs-Roots': roots.map((c) => c.toString()).join(','),
    'X-Content-Type-Options': 'nosniff',
    Vary: 'Accept',
  })
}

export const RAW_MEDIA_TYPE = 'application/vnd.ipld.raw'
export const CAR_MEDIA_TYPE = 'application/vnd.ipld.car'

/** Verifiable response formats of the trustless gateway spec that Mycel serves. */
export type TrustlessRequest =
  | { format: 'raw' }
  | { format: 'car'; scope: DagScope; dups: boolean; order: 'dfs'; entityBytes?: EntityBytes }

/** entity-bytes=from:to as asked: negative counts from the end, `to` undefined means `*`. */
export interface EntityBytes {
  from: number
  to: number | undefined
  text: string
}

/** Every response format of the path and trustless gateways that Mycel serves. */
export type ResponseFormat = TrustlessRequest | { format: 'tar' } | { format: CodecFormat }

export const TAR_MEDIA_TYPE = 'application/x-tar'
const IPNS_RECORD_MEDIA_TYPE = 'application/vnd.ipfs.ipns-record'

/** ?format= values and the media type each stands for (path-gateway spec). */
const FORMATS: Record<string, string> = {
  raw: RAW_MEDIA_TYPE,
  car: CAR_MEDIA_TYPE,
  tar: TAR_MEDIA_TYPE,
  ...CODEC_MEDIA_TYPES,
  'ipns-record': IPNS_RECORD_MEDIA_TYPE,
}
const FORMAT_OF_MEDIA = new Map(Object.entries(FORMATS).map(([f, t]) => [t, f]))

/**
 * Which response format a request asks for, if any: `?format=` wins over `Accept` (IPIP-523),
 * Accept media ranges count in q order, and CAR parameters come from
 * `car-version`/`car-order`/`car-dups` or the Accept parameters. Unsupported values are errors
 * with the reason, never silently ignored. Undefined means the default (deserialized) response.
 */
export function negotiate(req: Request): ResponseFormat | undefined {
  const query = req.query as Record<string, unknown>
  const formatParam = single(query, 'format')
  let accepted: { type: string; params: Map<string, string> } | undefined
  const media = parseAccept(req.headers.accept ?? '')
  if (formatParam !== undefined) {
    const type = FORMATS[formatParam]
    if (type === undefined) {
      throw new InvalidArgumentError(
        `unknown format "${formatParam}"; use one of ${Object.keys(FORMATS)
          .filter((f) => f !== 'ipns-record')
          .join(', ')}`,
      )
    }
    // ?format=car picks CAR; an Accept CAR media range may still carry its order/dups params.
    accepted = { type, params: media.find((m) => m.type === type)?.params ?? new Map() }
  } else {
    accepted = media.find((m) => FORMAT_OF_MEDIA.has(m.type))
  }
  const format = accepted === undefined ? undefined : (FORMAT_OF_MEDIA.get(accepted.type) as string)
  if (format === 'ipns-record') {
    throw new UnsupportedFormatError(
      'IPNS records are not served: this gateway has no IPNS, only /ipfs paths',
    )
  }
  const carOnly = ['dag-scope', 'entity-bytes', 'car-version', 'car-order', 'car-dups']
  if (format !== 'car' || accepted === undefined) {
    for (const name of carOnly) {
      if (query[name] !== undefined)
        throw new InvalidArgumentError(`"${name}" applies only to CAR responses (format=car)`)
    }
    return format === undefined ? undefined : ({ format } as ResponseFormat)
  }
  const version = single(query, 'car-version') ?? accepted.params.get('version') ?? '1'
  if (version !== '1')
    throw new UnsupportedFormatError(`CAR version ${version} is not supported; only version=1 is`)
  const order = single(query, 'car-order') ?? accepted.params.get('order') ?? 'dfs'
  // "unk" lets the server pick; Mycel's order is always dfs, and says so.
  if (order !== 'dfs' && order !== 'unk')
    throw new UnsupportedFormatError(`CAR order "${order}" is not supported; use dfs or unk`)
  const dups = single(query, 'car-dups') ?? accepted.params.get('dups') ?? 'n'
  if (dups !== 'y' && dups !== 'n') throw new InvalidArgumentError(`CAR dups must be y or n (got "${dups}")`)
  const entityBytes = parseEntityBytes(single(query, 'entity-bytes'))
  // entity-bytes implies dag-scope=entity (spec).
  const scope = single(query, 'dag-scope') ?? (entityBytes === undefined ? 'all' : 'entity')
  if (scope !== 'all' && scope !== 'entity' && scope !== 'block') {
    throw new InvalidArgumentError(`dag-scope must be block, entity or all (got "${scope}")`)
  }
  if (entityBytes !== undefined && scope !== 'entity') {
    throw new InvalidArgumentError(`entity-bytes needs dag-scope=entity (got dag-scope=${scope})`)
  }
  return { format: 'car', scope, dups: dups === 'y', order: 'dfs', ...(entityBytes ? { entityBytes } : {}) }
}

function parseEntityBytes(text: string | undefined): EntityBytes | undefined {
  if (text === undefined) return undefined
  const m = /^(-?\d+):(-?\d+|\*)$/.exec(text)
  const from = Number(m?.[1])
  const to = m?.[2] === '*' ? undefined : Number(m?.[2])
  if (m === null || !Number.isSafeInteger(from) || (to !== undefined && !Number.isSafeInteger(to))) {
    throw new InvalidArgumentError(`entity-bytes must be from:to with integers or * (got "${text}")`)
  }
  if (from >= 0 && to !== undefined && to >= 0 && to < from) {
    throw new InvalidArgumentError(`entity-bytes "${text}": the end is before the start`)
  }
  return { from, to, text }
}

/**
 * entity-bytes against a file of `size` bytes, as inclusive offsets; undefined when no byte is
 * selected (the spec then answers as dag-scope=block).
 */
export function resolveEntityBytes(e: EntityBytes, size: number): { from: number; to: number } | undefined {
  const from = e.from < 0 ? Math.max(0, size + e.from) : e.from
  const to = e.to === undefined ? size - 1 : e.to < 0 ? size + e.to : Math.min(e.to, size - 1)
  return from <= to && from < size ? { from, to } : undefined
}

function single(query: Record<string, unknown>, name: string): string | undefined {
  const v = query[name]
  if (v === undefined) return undefined
  if (Array.isArray(v)) throw new InvalidArgumentError(`"${name}" given more than once`)
  return String(v)
}

/** Accept media ranges in preference order (q descending, then as listed); q=0 ones dropped. */
function parseAccept(header: string): Array<{ type: string; params: Map<string, string> }> {
  const out: Array<{ type: string; params: Map<string, string>; q: number; i: number }> = []
  header.split(',').forEach((part, i) => {
    const [type = '', ...rest] = part.split(';').map((s) => s.trim())
    if (type === '') return
    const params = new Map<string, string>()
    for (const p of rest) {
      const eq = p.indexOf('=')
      if (eq > 0)
        params.set(
          p.slice(0, eq).trim().toLowerCase(),
          p
            .slice(eq + 1)
            .trim()
            .replace(/^"|"$/g, ''),
        )
    }
    const q = params.has('q') ? Number(params.get('q')) : 1
    if (!(q > 0)) return
    out.push({ type: type.toLowerCase(), params, q, i })
  })
  return out.sort((a, b) => b.q - a.q || a.i - b.i)
}

/**
 * GET/HEAD of a verifiable response. The terminal block is read before the status goes out, so
 * a missing root is a 404; CAR bodies then stream with backpressure (a later failure cuts the
 * connection, the spec's "incomplete CAR").
 */
export async function serveTrustless(
  runtime: GatewayRuntime,
  request: TrustlessRequest,
  path: ContentPath,
  req: Request,
  res: Response,
  signal: AbortSignal,
): Promise<void> {
  const cluster = runtime.cluster
  const visited: Block[] = []
  let terminal: Block
  const roots: CID[] = [path.root]
  if (path.segments.length === 0) {
    terminal = { cid: path.root, bytes: await cluster.getBlock(path.root, { signal }) }
  } else {
    roots.length = 0
    const entry = await resolveContentPath(cluster, path, signal, visited, roots)
    const cid = entry.cid as unknown as Block['cid']
    const seenTerminal = visited.find((b) => b.cid.equals(cid))
    terminal = seenTerminal ?? { cid, bytes: await cluster.getBlock(cid, { signal }) }
  }
  const requestPath = headerContentPath(path)
  const filename = typeof req.query.filename === 'string' ? req.query.filename : undefined
  setContentPathHeaders(res, requestPath, roots)
  if (request.format === 'raw') {
    const etag = `"${terminal.cid.toString()}.raw"`
    res.set({
      Etag: etag,
      'Content-Type': RAW_MEDIA_TYPE,
      'Content-Disposition': attachment(filename ?? `${terminal.cid.toString()}.bin`),
    })
    if (etagMatches(req.headers['if-none-match'], etag)) {
      res.status(304).end()
      return
    }
    sendBytes(terminal.bytes, req, res)
    return
  }
  const dups = request.dups ? 'y' : 'n'
  // The same path with other CAR parameters is another body, so they all go into the ETag.
  const variant = createHash('sha256')
    .update(
      `${requestPath}\0${request.scope}\0${dups}\0${request.order}\0v1\0${request.entityBytes?.text ?? ''}`,
    )
    .digest('hex')
    .slice(0, 16)
  const etag = `W/"${path.root.toString()}.car.${variant}"`
  res.set({
    Etag: etag,
    'Content-Type': `${CAR_MEDIA_TYPE}; version=1; order=${request.order}; dups=${dups}`,
    'Content-Disposition': attachment(filename ?? `${path.root.toString()}.car`),
    // A CAR's length is unknown until it is streamed; byte ranges of it are not offered.
    'Accept-Ranges': 'none',
  })
  if (etagMatches(req.headers['if-none-match'], etag)) {
    res.status(304).end()
    return
  }
  res.status(200)
  if (req.method === 'HEAD') {
    res.end()
    return
  }
  res.flushHeaders()
  const car = request
  // entity-bytes applies to a file at the end of the path; on anything else it is ignored (spec).
  let scope = car.scope
  let byteRange: { from: number; to: number } | undefined
  const fileSize = car.entityBytes === undefined ? undefined : fileSizeOf(terminal.cid, terminal.bytes)
  if (car.entityBytes !== undefined && fileSize !== undefined) {
    byteRange = resolveEntityBytes(car.entityBytes, fileSize)
    if (byteRange === undefined) scope = 'block'
  }
  const seen = new Set<string>()
  async function* blocks(): AsyncGenerator<Block> {
    // First the blocks that prove the path, then the DAG (or entity, or block) at its end.
    for (const b of visited) {
      if (b.cid.equals(terminal.cid)) continue
      if (!car.dups && seen.has(b.cid.toString())) continue
      seen.add(b.cid.toString())
      yield b
    }
    yield* walkDag(terminal, (cid, s) => cluster.getBlock(cid, { signal: s }), {
      scope,
      dups: car.dups,
      ...(byteRange ? { byteRange } : {}),
      signal,
      seen,
    })
  }
  // Identity CIDs carry their bytes inline: never written as blocks, even with dups=y (spec).
  async function* withoutIdentity(): AsyncGenerator<Block> {
    for await (const b of blocks()) if (b.cid.multihash.code !== IDENTITY_CODE) yield b
  }
  await pipeCar(res, [path.root], withoutIdentity(), (err) => {
    if (!signal.aborted)
      runtime.log.warn({ path: requestPath, err: String(err) }, 'CAR response failed mid-stream')
  })
}

function attachment(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, '_')
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`
}
