import { createServer, type RequestListener, type Server, STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import {
  type GatewayEnv,
  type Logger,
  OverloadedError,
  PermissionDeniedError,
  RateLimitedError,
  RequestTimeoutError,
  type Scope,
  type TokenAuthenticator,
  UnauthenticatedError,
} from '@mycel/core'
import type { NextFunction, Request, Response } from 'express'
import type { GatewayMetrics } from '../metrics.js'
import { decideAccess, requiredScope } from './access.js'
import { errorBody, sendError } from './error-response.js'
import { addressKey, ConcurrencyLimits, TokenBuckets, watchBodyProgress } from './limits.js'

/** Idle keep-alive connections close after this (above common load balancers' 60 s). */
const KEEP_ALIVE_TIMEOUT_MS = 65_000
/** After a 408 for a stalled body, how long the answer may take to leave before the socket is cut. */
const STALLED_CLOSE_GRACE_MS = 1_000

interface Refusal {
  reason: string
  err: Error
  headers?: Record<string, string>
}

export interface RequestGuardComponents {
  config: GatewayEnv
  /** Undefined when MYCEL_AUTH=off. */
  tokens: TokenAuthenticator | undefined
  metrics: GatewayMetrics
  log: Logger
}

/**
 * Every request passes here before routing: who is calling (bearer token or address), the
 * client's rate limit, authorisation of the route's scope, concurrent requests per client and
 * overall, and the progress of the request body. Each refusal is answered in the gateway's
 * error shape (Kubo's JSON under /api/v0) without touching the rest of the service. Probes,
 * metrics and the API description are never limited.
 *
 * Authorisation is decided from the route alone, before anything is read from the cluster, so a
 * caller who may not read gets the same answer for content that exists and content that does not.
 */
export class RequestGuard {
  private readonly buckets: TokenBuckets | undefined
  private readonly concurrency: ConcurrencyLimits

  constructor(private readonly c: RequestGuardComponents) {
    const cfg = c.config
    this.buckets =
      cfg.MYCEL_RATE_LIMIT_RPS > 0
        ? new TokenBuckets(cfg.MYCEL_RATE_LIMIT_RPS, cfg.MYCEL_RATE_LIMIT_BURST)
        : undefined
    this.concurrency = new ConcurrencyLimits(
      cfg.MYCEL_MAX_CONCURRENT_REQUESTS,
      cfg.MYCEL_MAX_CONCURRENT_PER_CLIENT,
    )
  }

  readonly middleware = (req: Request, res: Response, next: NextFunction): void => {
    const need = requiredScope(req.method, req.path)
    if (need === 'open') {
      next()
      return
    }
    const address = addressKey(req.ip)
    const access =
      this.c.tokens === undefined
        ? { key: address }
        : decideAccess(
            req.headers.authorization,
            need,
            this.c.config.MYCEL_PUBLIC_READS,
            this.c.tokens,
            address,
          )
    const key = access.key
    const refusal =
      this.rateLimit(key) ??
      this.authRefusal(access.refusal, need, req.headers.authorization !== undefined) ??
      this.admit(key)
    if (refusal !== undefined) {
      this.c.metrics.refusedRequests.inc({ reason: refusal.reason })
      sendError(req, res, refusal.err, refusal.headers)
      return
    }
    res.once('close', () => this.concurrency.release(key))
    if (hasBody(req)) this.watchBody(req, res)
    next()
  }

  private rateLimit(key: string): Refusal | undefined {
    const wait = this.buckets?.take(key) ?? 0
    if (wait === 0) return undefined
    return {
      reason: 'rate',
      err: new RateLimitedError(
        `rate limit of ${this.c.config.MYCEL_RATE_LIMIT_RPS} requests per second exceeded`,
        wait,
      ),
    }
  }

  private authRefusal(err: Error | undefined, need: Scope, hadCredentials: boolean): Refusal | undefined {
    if (err === undefined) return undefined
    if (err instanceof PermissionDeniedError) {
      return {
        reason: 'forbidden',
        err,
        headers: { 'WWW-Authenticate': `Bearer realm="mycel", error="insufficient_scope", scope="${need}"` },
      }
    }
    if (hadCredentials) {
      return {
        reason: 'unauthenticated',
        err: new UnauthenticatedError(`invalid credentials: ${err.message}`),
        headers: { 'WWW-Authenticate': 'Bearer realm="mycel", error="invalid_token"' },
      }
    }
    return {
      reason: 'unauthenticated',
      err: new UnauthenticatedError(
        `authentication required: send "Authorization: Bearer TOKEN" with a token of scope "${need}"`,
      ),
    }
  }

  /** Counts the request in progress, unless the client or the gateway is at its limit. */
  private admit(key: string): Refusal | undefined {
    const cfg = this.c.config
    switch (this.concurrency.acquire(key)) {
      case 'ok':
        return undefined
      case 'client':
        return {
          reason: 'concurrency_client',
          err: new RateLimitedError(
            `too many requests in progress for this client (at most ${cfg.MYCEL_MAX_CONCURRENT_PER_CLIENT})`,
            1,
          ),
        }
      case 'overall':
        return {
          reason: 'concurrency_overall',
          err: new OverloadedError(
            `the gateway is at its limit of ${cfg.MYCEL_MAX_CONCURRENT_REQUESTS} requests in progress`,
            1,
          ),
        }
    }
  }

  close(): void {
    this.buckets?.close()
  }

  private watchBody(req: Request, res: Response): void {
    const cfg = this.c.config
    const stop = watchBodyProgress(
      req.socket,
      { windowMs: cfg.MYCEL_BODY_TIMEOUT_MS, minRate: cfg.MYCEL_BODY_MIN_RATE },
      (received, waitedMs) => {
        this.c.metrics.refusedRequests.inc({ reason: 'body_timeout' })
        this.c.log.warn(
          { client: req.ip, path: req.path, received, waitedMs },
          'request body too slow: closing',
        )
        if (res.headersSent) {
          req.socket.destroy()
          return
        }
        const err = new RequestTimeoutError(
          `request body too slow: ${received} bytes in ${Math.round(waitedMs / 1000)} s, at least ${cfg.MYCEL_BODY_MIN_RATE} bytes/s required`,
        )
        // The rest of the body is not read: the connection closes shortly after the answer.
        sendErrorAndClose(req, res, err)
      },
    )
    req.once('end', stop)
    res.once('close', stop)
  }
}

function sendErrorAndClose(req: Request, res: Response, err: Error): void {
  res.once('finish', () => setTimeout(() => req.socket.destroy(), STALLED_CLOSE_GRACE_MS).unref())
  const { type, body } = errorBody(req.url, 408, err.message)
  res.writeHead(408, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), Connection: 'close' })
  res.end(body)
}

function hasBody(req: Request): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0
}

/**
 * An HTTP server with the gateway's connection limits: header size (431) and header timeout
 * (408) are enforced by Node's parser (answered by `answerClientErrors`). The whole-request
 * timeout stays off: a large upload may take long, and its body's progress is what RequestGuard
 * watches.
 */
export function createGatewayServer(config: GatewayEnv, handler?: RequestListener): Server {
  return createServer(
    {
      maxHeaderSize: config.MYCEL_MAX_HEADER_BYTES,
      headersTimeout: config.MYCEL_HEADERS_TIMEOUT_MS,
      requestTimeout: 0,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      // How often Node checks header timeouts (its default of 30 s would double a 30 s timeout).
      connectionsCheckingInterval: Math.max(
        100,
        Math.min(5_000, Math.floor(config.MYCEL_HEADERS_TIMEOUT_MS / 10)),
      ),
    },
    handler,
  )
}

/** Answers what Node's parser refuses (431, 408, 400) in the gateway's error shape. */
export function answerClientErrors(server: Server, config: GatewayEnv, metrics: GatewayMetrics): void {
  server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket) => {
    const pending = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage
    if (err.code === 'ECONNRESET' || !socket.writable || pending?.headersSent) {
      socket.destroy()
      return
    }
    let status = 400
    let message = `bad request: ${err.message}`
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      status = 431
      message = `request line and headers exceed ${config.MYCEL_MAX_HEADER_BYTES} bytes`
      metrics.refusedRequests.inc({ reason: 'headers_too_large' })
    } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408
      message = `request headers not received within ${config.MYCEL_HEADERS_TIMEOUT_MS} ms`
      metrics.refusedRequests.inc({ reason: 'headers_timeout' })
    }
    // The request line, when it arrived, says whether the answer takes Kubo's shape.
    const url = /^[A-Z]+ (\S+)/.exec(err.rawPacket?.toString('latin1') ?? '')?.[1] ?? ''
    const { type, body } = errorBody(url, status, message)
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${type}\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    )
  })
}
