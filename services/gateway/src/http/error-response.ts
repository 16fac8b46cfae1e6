import type { IncomingMessage, ServerResponse } from 'node:http'
import { isMycelError } from '@mycel/core'
import { httpStatusOf } from '@mycel/proto'

/** Headers an error answer carries: when to retry (429, 503) and how to authenticate (401). */
export function errorHeaders(err: unknown): Record<string, string> {
  if (!isMycelError(err)) return {}
  const headers: Record<string, string> = {}
  const retry = (err as { retryAfterSeconds?: unknown }).retryAfterSeconds
  if (typeof retry === 'number') headers['Retry-After'] = String(Math.max(1, Math.ceil(retry)))
  if (err.code === 'UNAUTHENTICATED') headers['WWW-Authenticate'] = 'Bearer realm="mycel"'
  return headers
}

/** Whether the request is a Kubo RPC call, whose errors use Kubo's JSON shape. */
export function isKuboRpcPath(url: string): boolean {
  return url.startsWith('/api/v0/')
}

/** The body of an error answer: Kubo's `{Message, Code, Type}` under /api/v0, plain text elsewhere. */
export function errorBody(url: string, status: number, message: string): { type: string; body: string } {
  if (isKuboRpcPath(url)) {
    return {
      type: 'application/json; charset=utf-8',
      body: JSON.stringify({ Message: message, Code: status >= 500 ? 0 : 1, Type: 'error' }),
    }
  }
  return { type: 'text/plain; charset=utf-8', body: `${message}\n` }
}

/** Answers an error (from outside Nest's filter: guards and limits), in the gateway's shape. */
export function sendError(
  req: IncomingMessage,
  res: ServerResponse,
  err: Error,
  extra: Record<string, string> = {},
) {
  const status = httpStatusOf(err)
  const { type, body } = errorBody(req.url ?? '', status, err.message)
  if (!req.complete) discardRestOfBody(req)
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    ...errorHeaders(err),
    ...extra,
  })
  res.end(req.method === 'HEAD' ? undefined : body)
}

/**
 * Most bodies that fail early (a bad option, 413) are still being sent. Closing the socket now
 * would reset the connection before the client reads the answer, so the rest is read and
 * dropped, up to a bound; past it the connection is cut.
 */
const MAX_DISCARD_BYTES = 64 * 1024 * 1024

export function discardRestOfBody(req: IncomingMessage): void {
  let discarded = 0
  req.unpipe()
  req.on('data', (chunk: Buffer) => {
    discarded += chunk.length
    if (discarded > MAX_DISCARD_BYTES) req.socket.destroy()
  })
  req.resume()
}
