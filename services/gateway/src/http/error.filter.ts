import { isAbortError, isMycelError } from '@mycel/core'
import { httpStatusOf } from '@mycel/proto'
import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Inject } from '@nestjs/common'
import type { Request, Response } from 'express'
import { GatewayRuntime } from '../gateway-runtime.js'

/**
 * Maps every error to one HTTP answer through the shared error table: Kubo's JSON error shape
 * under /api/v0, plain text elsewhere. Unexpected errors are 500s logged with their stack.
 */
@Catch()
export class GatewayErrorFilter implements ExceptionFilter {
  constructor(@Inject(GatewayRuntime) private readonly runtime: GatewayRuntime) {}

  catch(err: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp()
    const req = http.getRequest<Request>()
    const res = http.getResponse<Response>()
    if (res.headersSent) {
      res.destroy()
      return
    }
    let status: number
    let message: string
    if (err instanceof HttpException) {
      status = err.getStatus()
      message = err.message
    } else if (isAbortError(err) && !isMycelError(err)) {
      // The client went away; nobody is left to answer.
      res.destroy()
      return
    } else {
      status = httpStatusOf(err)
      message = err instanceof Error ? err.message : String(err)
      if (status >= 500 && !isMycelError(err))
        this.runtime.log.error({ err, path: req.path }, 'unhandled error')
    }
    if (!req.complete) discardRestOfBody(req)
    if (req.path.startsWith('/api/v0/')) {
      res.status(status).json({ Message: message, Code: status >= 500 ? 0 : 1, Type: 'error' })
    } else {
      res.status(status).type('text/plain; charset=utf-8').send(`${message}\n`)
    }
  }
}

/**
 * Most bodies that fail early (a bad option, 413) are still being sent. Closing the socket now
 * would reset the connection before the client reads the answer, so the rest is read and
 * dropped, up to a bound; past it the connection is cut.
 */
const MAX_DISCARD_BYTES = 64 * 1024 * 1024

function discardRestOfBody(req: Request): void {
  let discarded = 0
  req.unpipe()
  req.on('data', (chunk: Buffer) => {
    discarded += chunk.length
    if (discarded > MAX_DISCARD_BYTES) req.socket.destroy()
  })
  req.resume()
}
