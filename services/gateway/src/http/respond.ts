import type { Request, Response } from 'express'
import { type ByteRange, parseRange } from './range.js'

/**
 * Sends bytes held in memory (a block, a document, a generated page) with Content-Length and a
 * single byte range if one is asked (several ranges get the whole body, 200); no body for HEAD.
 */
export function sendBytes(bytes: Uint8Array, req: Request, res: Response): void {
  const range = answerRange(req, res, bytes.byteLength)
  const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const part = range === undefined ? body : body.subarray(range.start, range.end + 1)
  if (req.method === 'HEAD') res.end()
  else res.end(part)
}

/**
 * The byte range to send of a body of `size` bytes (single ranges only, see parseRange), with
 * the status, Accept-Ranges, Content-Range and Content-Length set for it.
 */
export function answerRange(req: Request, res: Response, size: number): ByteRange | undefined {
  res.set('Accept-Ranges', 'bytes')
  let range: ByteRange | undefined
  try {
    range = parseRange(req.headers.range, size)
  } catch (err) {
    res.set('Content-Range', `bytes */${size}`)
    throw err
  }
  if (range !== undefined) res.status(206).set('Content-Range', `bytes ${range.start}-${range.end}/${size}`)
  else res.status(200)
  res.set('Content-Length', String(range === undefined ? size : range.end - range.start + 1))
  return range
}

export function etagMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false
  const strip = (t: string) => t.trim().replace(/^W\//, '')
  const want = strip(etag)
  return header.split(',').some((t) => strip(t) === want || t.trim() === '*')
}

export interface HeldStreamOptions {
  /** Bytes held back before the status goes out, so that an early failure is still an error status. */
  hold: number
  /** Sets the status and headers; called once, just before the first byte is written. */
  commit(): void
  /** A failure after the status went out: the caller ends the response its way (cut, trailer). */
  lateError(err: unknown): void
}

/**
 * Streams `source` into `res` with backpressure. The first `hold` bytes are held back before
 * anything is sent: a stream that fails within them (a bad name at the top of a TAR, a missing
 * block) rejects with its error while the status can still say so; a stream that fails later is
 * handed to `lateError`.
 */
export async function streamHeld(
  res: Response,
  source: AsyncIterable<Uint8Array>,
  opts: HeldStreamOptions,
): Promise<void> {
  const held: Uint8Array[] = []
  let heldBytes = 0
  let committed = false
  const commit = () => {
    committed = true
    opts.commit()
    for (const chunk of held) res.write(chunk)
    held.length = 0
  }
  try {
    for await (const chunk of source) {
      if (!committed) {
        held.push(chunk)
        heldBytes += chunk.byteLength
        if (heldBytes >= opts.hold) commit()
        continue
      }
      if (res.destroyed) break
      if (!res.write(chunk)) await drained(res)
    }
  } catch (err) {
    if (!committed) throw err
    opts.lateError(err)
    return
  }
  if (!committed) commit()
  res.end()
}

/** Resolves when the response can take more bytes, or is gone. */
export function drained(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.once('drain', done)
    res.once('close', done)
  })
}

/** Kubo's RPC trailer for a failure after the status went out (go-ipfs-cmds StreamErrHeader). */
export const STREAM_ERROR_TRAILER = 'X-Stream-Error'

/**
 * A streamed Kubo RPC answer, the way go-ipfs-cmds sends one: chunked, `Trailer: X-Stream-Error`
 * declared, status 200 with the first bytes. A failure before any byte is an ordinary error
 * answer (the promise rejects); a failure after ends the body cleanly with the error in the
 * X-Stream-Error trailer, which Kubo's clients check. `hold` bytes are held back first (see
 * streamHeld). Returns the late error, if any.
 */
export async function streamRpc(
  res: Response,
  source: AsyncIterable<Uint8Array>,
  headers: Record<string, string>,
  hold = 0,
): Promise<unknown> {
  let late: unknown
  await streamHeld(res, source, {
    hold,
    commit: () => {
      res.status(200).set({ ...headers, Trailer: STREAM_ERROR_TRAILER })
    },
    lateError: (err) => {
      late = err
      if (res.destroyed) return
      const message = err instanceof Error ? err.message : String(err)
      res.addTrailers({ [STREAM_ERROR_TRAILER]: message.replace(/[\r\n]+/g, ' ') })
      res.end()
    },
  })
  return late
}
