import { fileTypeFromBuffer } from 'file-type'
import mime from 'mime-types'

/** Bytes read from the start of a file to sniff its type (file-type looks at up to 4100). */
export const SNIFF_BYTES = 4100

/**
 * Content-Type of a file served by the path gateway: from the name's extension when it has a
 * known one, else sniffed from its first bytes.
 *
 * Sniffing uses `file-type` (a small, widely used magic-number library that already sits in the
 * dependency tree through NestJS) for binary formats: images, audio, video, archives, fonts,
 * PDF... It does not classify text, so text follows the WHATWG MIME Sniffing rules the way Go's
 * http.DetectContentType (what Kubo uses) applies them: a leading HTML tag gives text/html, no
 * "binary data byte" gives text/plain; charset=utf-8, anything else application/octet-stream. A
 * whole small file that is a JSON object or array is application/json, as Kubo's gateway answers
 * for such raw blocks.
 */
export async function contentTypeOf(
  name: string | undefined,
  head: Uint8Array,
  size: number,
): Promise<string> {
  return typeByName(name) ?? (await sniffContentType(head, size))
}

/** The type a name's extension gives, if it is a known one. */
export function typeByName(name: string | undefined): string | undefined {
  const byName = name ? mime.contentType(name.split('/').at(-1) ?? '') : false
  return byName || undefined
}

/** The type sniffed from a file's first bytes (`size` is the whole file's). */
export async function sniffContentType(head: Uint8Array, size: number): Promise<string> {
  const magic = await fileTypeFromBuffer(head).catch(() => undefined)
  if (magic !== undefined) return magic.mime
  return sniffText(head, size)
}

const HTML_TAGS = [
  '<!doctype html',
  '<html',
  '<head',
  '<script',
  '<iframe',
  '<h1',
  '<div',
  '<font',
  '<table',
  '<a',
  '<style',
  '<title',
  '<b',
  '<body',
  '<br',
  '<p',
  '<!--',
]

/** WHATWG MIME Sniffing §7.1 (the text part): HTML by its first tag, then text vs binary. */
export function sniffText(head: Uint8Array, size: number): string {
  let i = 0
  while (i < head.length && [0x09, 0x0a, 0x0c, 0x0d, 0x20].includes(head[i] as number)) i++
  const start = Buffer.from(head.subarray(i, i + 16))
    .toString('latin1')
    .toLowerCase()
  for (const tag of HTML_TAGS) {
    // The tag must be followed by a space or '>' (a "tag-terminating byte").
    if (start.startsWith(tag) && (tag === '<!--' || [' ', '>'].includes(start[tag.length] ?? ''))) {
      return 'text/html; charset=utf-8'
    }
  }
  if (head.length >= 5 && Buffer.from(head.subarray(0, 5)).toString('latin1') === '%PDF-')
    return 'application/pdf'
  for (const b of head) {
    if (b <= 0x08 || b === 0x0b || (b >= 0x0e && b <= 0x1a) || (b >= 0x1c && b <= 0x1f)) {
      return 'application/octet-stream'
    }
  }
  if (head.length === size && isJsonContainer(head)) return 'application/json'
  return 'text/plain; charset=utf-8'
}

function isJsonContainer(bytes: Uint8Array): boolean {
  const text = Buffer.from(bytes).toString('utf8').trim()
  if (!(text.startsWith('{') || text.startsWith('['))) return false
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/**
 * Content-Disposition (RFC 6266) with the name as an ASCII fallback and, for any other name,
 * RFC 5987's UTF-8 `filename*`, which every current browser prefers.
 */
export function contentDisposition(type: 'inline' | 'attachment', filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\%]/g, '_')
  if (ascii === filename) return `${type}; filename="${filename}"`
  return `${type}; filename="${ascii}"; filename*=UTF-8''${encodeRfc5987(filename)}`
}

function encodeRfc5987(s: string): string {
  return encodeURIComponent(s).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}
