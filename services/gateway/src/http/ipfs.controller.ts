import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { type CID, InvalidArgumentError, isAbortError, NotAFileError, parseCid } from '@mycel/core'
import { All, Controller, Inject, Req, Res } from '@nestjs/common'
import type { Request, Response } from 'express'
import type { UnixFSEntry } from 'ipfs-unixfs-exporter'
import { exporter } from 'ipfs-unixfs-exporter'
import { GatewayRuntime } from '../gateway-runtime.js'
import { type CodecFormat, isDocumentCodec, refuseConversion, serveDocument } from './codec.js'
import { contentDisposition, SNIFF_BYTES, sniffContentType, typeByName } from './content-type.js'
import { escapeHtml, LISTING_CACHE_CONTROL, LISTING_VERSION } from './listing.js'
import {
  type ContentPath,
  decodableBlocks,
  headerContentPath,
  type PathStore,
  readEntries,
  resolvePath,
} from './resolve.js'
import { answerRange } from './respond.js'
import { refuseTar, serveTar } from './tar-response.js'
import { negotiate, serveTrustless, setContentPathHeaders } from './trustless.js'

/** Blocks fetched ahead of the one being sent, so node round trips overlap. */
const READ_AHEAD_BLOCKS = 8

/** IPFS path gateway: GET and HEAD /ipfs/{cid}[/path], streaming, with single Range requests. */
@Controller('ipfs')
export class IpfsController {
  constructor(@Inject(GatewayRuntime) private readonly runtime: GatewayRuntime) {}

  @All([':cid', ':cid/*path'])
  async serve(@Req() req: Request, @Res() res: Response): Promise<void> {
    // Gateway responses are public and immutable: any origin's JS may read them (gateway spec).
    res.set(CORS_HEADERS)
    if (req.method === 'OPTIONS') {
      res.status(200).set('Allow', 'GET, HEAD, OPTIONS').end()
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res
        .status(405)
        // OPTIONS is answered too (CORS preflight).
        .set('Allow', 'GET, HEAD, OPTIONS')
        .type('text/plain')
        .send(`method ${req.method} not allowed on /ipfs\n`)
      return
    }
    try {
      await this.serveContent(req, res)
    } catch (err) {
      // Cache-Control: only-if-cached asks for content this gateway has: what the cluster does
      // not hold is 412 Precondition Failed (gateway spec), never fetched from elsewhere.
      const name = (err as { name?: string }).name
      const missing = name === 'BlockNotFoundError' || name === 'PathNotFoundError'
      if (missing && !res.headersSent && /\bonly-if-cached\b/i.test(req.headers['cache-control'] ?? '')) {
        res
          .status(412)
          .type('text/plain')
          .send(`${(err as Error).message}\n`)
        return
      }
      throw err
    }
  }

  private async serveContent(req: Request, res: Response): Promise<void> {
    const root = parseCid(String(req.params.cid))
    const download = req.query.download
    if (download !== undefined && download !== 'true' && download !== 'false') {
      throw new InvalidArgumentError(`download must be true or false (got "${String(download)}")`)
    }
    const rawPath = req.params.path as unknown
    const segments = (Array.isArray(rawPath) ? rawPath : rawPath === undefined ? [] : [rawPath])
      .map(String)
      .filter((s) => s !== '')
    const abort = new AbortController()
    res.on('close', () => {
      if (!res.writableFinished) abort.abort()
    })
    const format = negotiate(req)
    if (format?.format === 'raw' || format?.format === 'car') {
      await serveTrustless(this.runtime, format, { root, segments }, req, res, abort.signal)
      return
    }
    const path = { root, segments }
    const resolved = await resolvePath(this.runtime.cluster, path, abort.signal)
    const requestPath = `${headerContentPath(path)}${req.path.endsWith('/') ? '/' : ''}`
    setContentPathHeaders(res, requestPath, resolved.roots)
    const cid = resolved.cid
    if (isDocumentCodec(cid.code)) {
      if (format?.format === 'tar') refuseTar(cid)
      const bytes = await first(resolved.store.get(cid, { signal: abort.signal }))
      resolved.done()
      const docFormat = format === undefined ? undefined : (format.format as CodecFormat)
      serveDocument({ cid, bytes, format: docFormat }, req, res)
      return
    }
    if (format?.format === 'dag-json' || format?.format === 'dag-cbor') refuseConversion(cid, format.format)
    let entry: UnixFSEntry
    try {
      entry = await exporter(cid, resolved.store, { signal: abort.signal })
    } finally {
      resolved.done()
    }
    if (format?.format === 'tar') {
      await serveTar(this.runtime, entry, resolved.store, req, res, abort.signal)
      return
    }
    // format=json and format=cbor on UnixFS content: the content as it is (as Kubo answers).
    res.set('Etag', `"${entry.cid.toString()}"`)
    if (entry.type === 'directory') {
      await this.serveDirectory(entry, path, requestPath, req, res, abort.signal)
      return
    }
    if (req.headers['if-none-match'] !== undefined && etagMatches(req.headers['if-none-match'], entry.cid)) {
      res.status(304).end()
      return
    }
    await this.serveFile(entry, segments.at(-1), req, res, abort, resolved.store)
  }

  private async serveFile(
    entry: UnixFSEntry,
    lastSegment: string | undefined,
    req: Request,
    res: Response,
    abort: AbortController,
    store?: PathStore,
  ): Promise<void> {
    if (entry.type !== 'file' && entry.type !== 'raw' && entry.type !== 'identity') {
      throw new NotAFileError(
        `${res.get('X-Ipfs-Path')} is a ${entry.type} node, which this gateway does not render`,
      )
    }
    if (entry.type === 'file' && entry.unixfs.type === 'symlink') {
      // A UnixFS symlink is served as its target path, as text (Kubo does the same).
      const target = Buffer.from(entry.unixfs.data ?? new Uint8Array())
      res.status(200).setHeader('Content-Type', 'text/plain; charset=utf-8')
      res.set('Content-Length', String(target.byteLength))
      if (req.method === 'HEAD') res.end()
      else res.end(target)
      return
    }
    const size = Number(entry.size)
    const asked =
      typeof req.query.filename === 'string' && req.query.filename !== '' ? req.query.filename : undefined
    const filename = asked ?? lastSegment
    // setHeader, not res.set: Express would append a charset to types such as application/json.
    const sniff = () => this.contentType(entry, filename, size, abort.signal)
    res.setHeader('Content-Type', await (store?.peek(sniff) ?? sniff()))
    if (req.query.download === 'true') {
      res.set('Content-Disposition', contentDisposition('attachment', filename ?? entry.cid.toString()))
    } else if (asked !== undefined) {
      res.set('Content-Disposition', contentDisposition('inline', asked))
    }
    const range = answerRange(req, res, size)
    const offset = range?.start ?? 0
    const length = range === undefined ? size : range.end - range.start + 1
    if (req.method === 'HEAD' || length === 0) {
      res.end()
      return
    }
    res.flushHeaders()
    const metrics = this.runtime.metrics
    const content = entry.content({
      offset,
      length,
      signal: abort.signal,
      blockReadConcurrency: READ_AHEAD_BLOCKS,
    })
    async function* counted() {
      for await (const chunk of content) {
        metrics.bytesOut.inc(chunk.byteLength)
        yield chunk
      }
    }
    try {
      await pipeline(Readable.from(counted(), { objectMode: false }), res)
    } catch (err) {
      // Headers are gone: the only honest signal left is a broken connection (short body).
      if (!isAbortError(err) && !abort.signal.aborted) {
        this.runtime.log.warn({ cid: entry.cid.toString(), err: String(err) }, 'download failed mid-stream')
      }
      res.destroy()
    }
  }

  /**
   * By extension, else sniffed from the first bytes. A first block that cannot be read does not
   * fail the request (a Range request may not need it): the type is then application/octet-stream.
   */
  private async contentType(
    entry: UnixFSEntry,
    filename: string | undefined,
    size: number,
    signal: AbortSignal,
  ): Promise<string> {
    const byName = typeByName(filename)
    if (byName !== undefined) return byName
    try {
      return await sniffContentType(await readHead(entry, Math.min(size, SNIFF_BYTES), signal), size)
    } catch (err) {
      if (signal.aborted) throw err
      return 'application/octet-stream'
    }
  }

  /**
   * A directory: redirected to its URL with a trailing slash (so relative links resolve), then its
   * index.html if it has one (with the directory's ETag and caching), else a generated listing.
   */
  private async serveDirectory(
    entry: UnixFSEntry,
    path: ContentPath,
    requestPath: string,
    req: Request,
    res: Response,
    signal: AbortSignal,
  ): Promise<void> {
    if (entry.type !== 'directory') return
    if (!req.path.endsWith('/')) {
      const q = req.originalUrl.indexOf('?')
      res.redirect(301, `${req.path}/${q >= 0 ? req.originalUrl.slice(q) : ''}`)
      return
    }
    let index: UnixFSEntry | undefined
    try {
      index = await exporter(`${entry.cid.toString()}/index.html`, decodableBlocks(this.runtime.cluster), {
        signal,
      })
    } catch (err) {
      const name = (err as { name?: string }).name
      if (
        name !== 'NotFoundError' &&
        name !== 'ResolveError' &&
        (err as { code?: string }).code !== 'ERR_NOT_FOUND'
      )
        throw err
    }
    if (index !== undefined && index.type !== 'directory') {
      if (
        req.headers['if-none-match'] !== undefined &&
        etagMatches(req.headers['if-none-match'], entry.cid)
      ) {
        res.status(304).end()
        return
      }
      const abort = new AbortController()
      signal.addEventListener('abort', () => abort.abort(), { once: true })
      await this.serveFile(index, 'index.html', req, res, abort)
      return
    }
    // A listing is generated HTML that may change with this gateway's version: cached for a week.
    const etag = `"DirIndex-${LISTING_VERSION}_CID-${entry.cid.toString()}"`
    res.set({ Etag: etag, 'Cache-Control': LISTING_CACHE_CONTROL })
    if (req.headers['if-none-match'] !== undefined && etagListMatches(req.headers['if-none-match'], etag)) {
      res.status(304).end()
      return
    }
    const rows: string[] = []
    const base = req.path
    // Parent link first (below the root), as Kubo's listing has it.
    if (path.segments.length > 0)
      rows.push(`<tr><td><a href="${escapeHtml(`${base}..`)}">..</a></td><td></td></tr>`)
    for await (const child of readEntries(entry, requestPath, signal)) {
      const name = escapeHtml(child.name)
      const href = `${base}${encodeURIComponent(child.name)}`
      const hashHref = `/ipfs/${child.cid.toString()}?filename=${encodeURIComponent(encodeURIComponent(child.name))}`
      rows.push(
        `<tr><td><a href="${escapeHtml(href)}">${name}</a></td>` +
          `<td><a class="ipfs-hash" translate="no" href="${escapeHtml(hashHref)}">${child.cid.toString()}</a></td></tr>`,
      )
    }
    res.status(200).type('text/html; charset=utf-8')
    const html =
      `<!doctype html><meta charset="utf-8"><title>${escapeHtml(requestPath)}</title>` +
      `<h1>Index of ${breadcrumbs(path)}</h1><table>${rows.join('')}</table>\n`
    if (req.method === 'HEAD') {
      res.set('Content-Length', String(Buffer.byteLength(html))).end()
      return
    }
    res.send(html)
  }
}

/** `/ipfs/CID/a/b` with every step a link to its own path (names escaped, hrefs percent-encoded). */
function breadcrumbs(path: ContentPath): string {
  let href = `/ipfs/${path.root.toString()}`
  const parts = [`<a href="${href}">${path.root.toString()}</a>`]
  for (const segment of path.segments) {
    href += `/${encodeURIComponent(segment)}`
    parts.push(`<a href="${escapeHtml(href)}">${escapeHtml(segment)}</a>`)
  }
  return `/ipfs/${parts.join('/')}`
}

/** Reads the first `length` bytes of a file (to sniff its type before the headers go out). */
async function readHead(entry: UnixFSEntry, length: number, signal: AbortSignal): Promise<Uint8Array> {
  if (length === 0 || entry.type === 'directory' || entry.type === 'object') return new Uint8Array()
  const parts: Uint8Array[] = []
  for await (const chunk of entry.content({ offset: 0, length, signal })) parts.push(chunk as Uint8Array)
  return Buffer.concat(parts)
}

const CORS_HEADERS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS',
  'Access-Control-Allow-Headers': 'Content-Type, Range, User-Agent, X-Requested-With',
  'Access-Control-Expose-Headers':
    'Content-Range, Content-Length, X-Ipfs-Path, X-Ipfs-Roots, X-Chunked-Output, X-Stream-Output',
}

function etagListMatches(header: string, etag: string): boolean {
  const tags = header.split(',').map((t) => t.trim().replace(/^W\//, ''))
  return tags.includes('*') || tags.includes(etag)
}

function etagMatches(header: string, cid: CID): boolean {
  const tags = header.split(',').map((t) => t.trim().replace(/^W\//, ''))
  return tags.includes('*') || tags.includes(`"${cid.toString()}"`)
}

/** The single value of a block read (a block store yields a block as one chunk). */
async function first(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  for await (const chunk of chunks) return chunk
  throw new Error('block store yielded nothing')
}
