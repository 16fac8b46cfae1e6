import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { type CID, isAbortError, NotAFileError, parseCid } from '@mycel/core'
import { All, Controller, Inject, Req, Res } from '@nestjs/common'
import type { Request, Response } from 'express'
import type { UnixFSEntry } from 'ipfs-unixfs-exporter'
import mime from 'mime-types'
import { GatewayRuntime } from '../gateway-runtime.js'
import { parseRange } from './range.js'
import { resolveContentPath } from './resolve.js'
import { IMMUTABLE, negotiate, serveTrustless } from './trustless.js'

/** Blocks fetched ahead of the one being sent, so node round trips overlap. */
const READ_AHEAD_BLOCKS = 8

/** IPFS path gateway: GET and HEAD /ipfs/{cid}[/path], streaming, with single Range requests. */
@Controller('ipfs')
export class IpfsController {
  constructor(@Inject(GatewayRuntime) private readonly runtime: GatewayRuntime) {}

  @All([':cid', ':cid/*path'])
  async serve(@Req() req: Request, @Res() res: Response): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res
        .status(405)
        .set('Allow', 'GET, HEAD')
        .type('text/plain')
        .send(`method ${req.method} not allowed on /ipfs\n`)
      return
    }
    const root = parseCid(String(req.params.cid))
    const rawPath = req.params.path as unknown
    const segments = (Array.isArray(rawPath) ? rawPath : rawPath === undefined ? [] : [rawPath]).map(String)
    const abort = new AbortController()
    res.on('close', () => {
      if (!res.writableFinished) abort.abort()
    })
    const trustless = negotiate(req)
    if (trustless !== undefined) {
      await serveTrustless(this.runtime, trustless, { root, segments }, req, res, abort.signal)
      return
    }
    const entry = await resolveContentPath(this.runtime.cluster, { root, segments }, abort.signal)
    const requestPath = `/ipfs/${root.toString()}${segments.length > 0 ? `/${segments.join('/')}` : ''}`
    res.set({
      Etag: `"${entry.cid.toString()}"`,
      'Cache-Control': IMMUTABLE,
      'X-Ipfs-Path': requestPath,
      'X-Content-Type-Options': 'nosniff',
      // The same URL also serves raw blocks and CARs, chosen by Accept.
      Vary: 'Accept',
    })
    if (req.headers['if-none-match'] !== undefined && etagMatches(req.headers['if-none-match'], entry.cid)) {
      res.status(304).end()
      return
    }
    if (entry.type === 'directory') {
      await this.listDirectory(entry, requestPath, req, res, abort.signal)
      return
    }
    if (entry.type !== 'file' && entry.type !== 'raw' && entry.type !== 'identity') {
      throw new NotAFileError(`${requestPath} is a ${entry.type} node, which this gateway does not render`)
    }
    const size = Number(entry.size)
    const filename = typeof req.query.filename === 'string' ? req.query.filename : segments.at(-1)
    res.set('Content-Type', (filename && mime.lookup(filename)) || 'application/octet-stream')
    res.set('Accept-Ranges', 'bytes')
    let range: { start: number; end: number } | undefined
    try {
      range = parseRange(req.headers.range, size)
    } catch (err) {
      res.set('Content-Range', `bytes */${size}`)
      throw err
    }
    const offset = range?.start ?? 0
    const length = range === undefined ? size : range.end - range.start + 1
    if (range !== undefined) {
      res.status(206).set('Content-Range', `bytes ${range.start}-${range.end}/${size}`)
    } else {
      res.status(200)
    }
    res.set('Content-Length', String(length))
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

  /** A plain HTML listing of a UnixFS directory (names link to their path, with sizes and CIDs). */
  private async listDirectory(
    entry: UnixFSEntry,
    requestPath: string,
    req: Request,
    res: Response,
    signal: AbortSignal,
  ): Promise<void> {
    if (entry.type !== 'directory') return
    if (!req.path.endsWith('/')) {
      res.redirect(301, `${req.path}/`)
      return
    }
    const rows: string[] = []
    for await (const child of entry.entries({ signal })) {
      const name = escapeHtml(child.name)
      rows.push(
        `<tr><td><a href="${encodeURIComponent(child.name)}">${name}</a></td><td>${child.cid.toString()}</td></tr>`,
      )
    }
    res
      .status(200)
      .type('text/html; charset=utf-8')
      .send(
        `<!doctype html><meta charset="utf-8"><title>${escapeHtml(requestPath)}</title>` +
          `<h1>Index of ${escapeHtml(requestPath)}</h1><table>${rows.join('')}</table>\n`,
      )
  }
}

function etagMatches(header: string, cid: CID): boolean {
  const tags = header.split(',').map((t) => t.trim().replace(/^W\//, ''))
  return tags.includes('*') || tags.includes(`"${cid.toString()}"`)
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
