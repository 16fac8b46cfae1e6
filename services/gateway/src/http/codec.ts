import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import { CODEC_CBOR, CODEC_DAG_CBOR, CODEC_DAG_JSON, CODEC_JSON } from '@mycel/cluster'
import { type CID, NotAcceptableError } from '@mycel/core'
import type { Request, Response } from 'express'
import { contentDisposition } from './content-type.js'
import { escapeHtml, LISTING_CACHE_CONTROL, LISTING_VERSION } from './listing.js'
import { etagMatches, sendBytes } from './respond.js'

/** Response formats of the path gateway for IPLD documents (path-gateway spec, IPIP-524). */
export type CodecFormat = 'dag-json' | 'dag-cbor' | 'json' | 'cbor'

export const CODEC_MEDIA_TYPES: Record<CodecFormat, string> = {
  'dag-json': 'application/vnd.ipld.dag-json',
  'dag-cbor': 'application/vnd.ipld.dag-cbor',
  json: 'application/json',
  cbor: 'application/cbor',
}

/** The format each document codec is served in when the request names none. */
const CODEC_DEFAULT_FORMAT = new Map<number, CodecFormat>([
  [CODEC_DAG_JSON, 'dag-json'],
  [CODEC_DAG_CBOR, 'dag-cbor'],
  [CODEC_JSON, 'json'],
  [CODEC_CBOR, 'cbor'],
])

/** Codecs a format may be served from as the stored bytes, with no conversion. */
const SERVED_FROM: Record<CodecFormat, number[]> = {
  'dag-json': [CODEC_DAG_JSON],
  'dag-cbor': [CODEC_DAG_CBOR],
  json: [CODEC_JSON, CODEC_DAG_JSON],
  cbor: [CODEC_CBOR, CODEC_DAG_CBOR],
}

/** Whether a CID names an IPLD document (JSON or CBOR family) rather than UnixFS or raw data. */
export function isDocumentCodec(code: number): boolean {
  return CODEC_DEFAULT_FORMAT.has(code)
}

/**
 * The dag-json/dag-cbor formats exist only for documents of that codec: anything else asked in
 * them is 406 (IPIP-524 removed codec conversion from the gateway specs; Kubo does the same).
 */
export function refuseConversion(cid: CID, format: CodecFormat): never {
  throw new NotAcceptableError(
    `format ${format} asked for ${cid.toString()}, whose codec is ${codecName(cid.code)}: ` +
      'codec conversion is not supported; fetch the block with ?format=raw and convert it client-side',
  )
}

export interface DocumentRequest {
  cid: CID
  bytes: Uint8Array
  /** ?format= or Accept, if either named a document format. */
  format: CodecFormat | undefined
}

/**
 * Serves an IPLD document (dag-json, dag-cbor, json, cbor) as its stored bytes: the requested
 * format must be the codec's own (json and cbor also accept dag-json and dag-cbor), else 406.
 * With no format, a browser (Accept: text/html) asking for a dag-json or dag-cbor document gets
 * an HTML preview instead, unless it asked for a download.
 */
export function serveDocument(doc: DocumentRequest, req: Request, res: Response): void {
  const { cid, bytes } = doc
  let format = doc.format
  if (format === undefined) {
    format = CODEC_DEFAULT_FORMAT.get(cid.code) as CodecFormat
    const wantsHtml = /\btext\/html\b/.test(req.headers.accept ?? '') && req.query.download !== 'true'
    if (wantsHtml && (cid.code === CODEC_DAG_JSON || cid.code === CODEC_DAG_CBOR)) {
      serveDocumentHtml(doc, req, res)
      return
    }
  } else if (!SERVED_FROM[format].includes(cid.code)) {
    refuseConversion(cid, format)
  }
  const mediaType = CODEC_MEDIA_TYPES[format]
  const etag = `"${cid.toString()}.${format}"`
  const json = format === 'json' || format === 'dag-json'
  const asked =
    typeof req.query.filename === 'string' && req.query.filename !== '' ? req.query.filename : undefined
  // JSON renders in a browser, so it is inline; CBOR is opaque bytes. ?download=true forces a download.
  const disposition = req.query.download === 'true' || !json ? 'attachment' : 'inline'
  res.setHeader('Content-Type', mediaType)
  res.set({
    Etag: etag,
    'Content-Disposition': contentDisposition(
      disposition,
      asked ?? `${cid.toString()}.${json ? 'json' : 'cbor'}`,
    ),
  })
  if (etagMatches(req.headers['if-none-match'], etag)) {
    res.status(304).end()
    return
  }
  sendBytes(bytes, req, res)
}

/** An HTML page showing a dag-json or dag-cbor document, its links clickable. */
function serveDocumentHtml(doc: DocumentRequest, req: Request, res: Response): void {
  if (!req.path.endsWith('/')) {
    // Relative links in the page resolve against a trailing-slash URL (as directory listings).
    const q = req.originalUrl.indexOf('?')
    res.redirect(301, `${req.path}/${q >= 0 ? req.originalUrl.slice(q) : ''}`)
    return
  }
  const { cid, bytes } = doc
  let body: string
  try {
    const value = cid.code === CODEC_DAG_JSON ? dagJson.decode(bytes) : dagCbor.decode(bytes)
    body = `<pre class="ipld">${renderValue(value, 0)}</pre>`
  } catch (err) {
    body = `<p>The block could not be decoded as ${codecName(cid.code)}: ${escapeHtml((err as Error).message)}</p>`
  }
  const path = res.get('X-Ipfs-Path') ?? `/ipfs/${cid.toString()}`
  const html =
    `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(path)}</title></head><body>` +
    `<h1>${escapeHtml(path)}</h1><p>CID <code>${cid.toString()}</code>, codec ${codecName(cid.code)} ` +
    `(0x${cid.code.toString(16)}), ${bytes.byteLength} bytes. ` +
    `<a href="?format=${cid.code === CODEC_DAG_JSON ? 'dag-json' : 'dag-cbor'}&amp;download=true">download</a> · ` +
    `<a href="?format=raw&amp;download=true">raw block</a> · <a href="?format=car&amp;download=true">CAR</a></p>` +
    `${body}</body></html>\n`
  res.removeHeader('Content-Disposition')
  res.set({
    Etag: `"DagIndex-${LISTING_VERSION}_CID-${cid.toString()}"`,
    'Cache-Control': LISTING_CACHE_CONTROL,
  })
  if (etagMatches(req.headers['if-none-match'], res.get('Etag') as string)) {
    res.status(304).end()
    return
  }
  res.setHeader('Content-Type', 'text/html; charset=utf-8')
  sendBytes(Buffer.from(html), req, res)
}

/** dag-json-like text of a decoded value, links as anchors to their /ipfs path. */
function renderValue(value: unknown, depth: number): string {
  const pad = '  '.repeat(depth + 1)
  const end = '  '.repeat(depth)
  const link = asCid(value)
  if (link !== undefined) {
    const text = link.toString()
    return `{"/": <a href="/ipfs/${text}/">${text}</a>}`
  }
  if (value instanceof Uint8Array) {
    return escapeHtml(`{"/": {"bytes": "${Buffer.from(value).toString('base64').replace(/=+$/, '')}"}}`)
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]'
    return `[\n${value.map((v) => `${pad}${renderValue(v, depth + 1)}`).join(',\n')}\n${end}]`
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
    if (entries.length === 0) return '{}'
    const rows = entries.map(
      ([k, v]) => `${pad}${escapeHtml(JSON.stringify(k))}: ${renderValue(v, depth + 1)}`,
    )
    return `{\n${rows.join(',\n')}\n${end}}`
  }
  return escapeHtml(typeof value === 'bigint' ? value.toString() : (JSON.stringify(value) ?? String(value)))
}

function asCid(value: unknown): CID | undefined {
  if (value === null || typeof value !== 'object') return undefined
  const v = value as { asCID?: unknown }
  return v.asCID === value ? (value as CID) : undefined
}

function codecName(code: number): string {
  switch (code) {
    case CODEC_DAG_JSON:
      return 'dag-json'
    case CODEC_DAG_CBOR:
      return 'dag-cbor'
    case CODEC_JSON:
      return 'json'
    case CODEC_CBOR:
      return 'cbor'
    case 0x70:
      return 'dag-pb'
    case 0x55:
      return 'raw'
    default:
      return `0x${code.toString(16)}`
  }
}
