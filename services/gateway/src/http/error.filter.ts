import { isAbortError, isMycelError } from '@mycel/core'
import { httpStatusOf } from '@mycel/proto'
import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Inject } from '@nestjs/common'
import type { Request, Response } from 'express'
import { GatewayRuntime } from '../gateway-runtime.js'
import { discardRestOfBody, errorBody, errorHeaders } from './error-response.js'

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
    const { type, body } = errorBody(req.path, status, message)
    res.status(status).set(errorHeaders(err)).setHeader('Content-Type', type)
    res.send(body)
  }
}
