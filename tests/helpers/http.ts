import { createReadStream } from 'node:fs'
import { Readable } from 'node:stream'

export interface UploadResult {
  status: number
  body: { cid?: string; size?: number } & Record<string, unknown>
  text: string
}

/** Raw upload of a file (streamed) or bytes to the gateway. */
export async function rawUpload(
  gatewayUrl: string,
  source: string | Uint8Array,
  query = '',
  signal?: AbortSignal,
): Promise<UploadResult> {
  const body =
    typeof source === 'string'
      ? (Readable.toWeb(createReadStream(source)) as ReadableStream<Uint8Array>)
      : source
  const res = await fetch(`${gatewayUrl}/mycel/v1/upload${query}`, {
    method: 'POST',
    body,
    duplex: 'half',
    signal,
  })
  const text = await res.text()
  let parsed: UploadResult['body'] = {}
  try {
    parsed = JSON.parse(text) as UploadResult['body']
  } catch {
    // non-JSON error body
  }
  return { status: res.status, body: parsed, text }
}

/** Kubo RPC add with one or more files as multipart parts; returns the JSON lines. */
export async function kuboAdd(
  gatewayUrl: string,
  files: Array<{ name: string; bytes: Uint8Array }>,
  query = '',
): Promise<{ status: number; lines: Array<Record<string, string>>; text: string }> {
  const form = new FormData()
  for (const f of files) form.append('file', new Blob([f.bytes]), encodeURIComponent(f.name))
  const res = await fetch(`${gatewayUrl}/api/v0/add${query}`, { method: 'POST', body: form })
  const text = await res.text()
  const lines =
    res.ok && text.trim() !== ''
      ? text
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, string>)
      : []
  return { status: res.status, lines, text }
}

/**
 * An HTTP request read with node:http, which exposes trailers (fetch does not): Kubo's RPC
 * reports failures after the status in the X-Stream-Error trailer.
 */
export async function requestWithTrailers(
  url: string,
  method = 'POST',
): Promise<{
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
  trailers: Record<string, string | undefined>
  complete: boolean
}> {
  const { request } = await import('node:http')
  return new Promise((resolve, reject) => {
    const req = request(url, { method }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      const done = () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks),
          trailers: res.trailers,
          complete: res.complete,
        })
      res.on('end', done)
      res.on('aborted', done)
      res.on('error', done)
    })
    req.on('error', reject)
    req.end()
  })
}
