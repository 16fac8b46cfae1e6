import { Controller, Get, Header, HttpCode, Inject, Res } from '@nestjs/common'
import type { Response } from 'express'
import { NodeRuntime } from '../node-runtime.js'

/** Admin HTTP endpoints: liveness, readiness and Prometheus metrics. */
@Controller()
export class AdminController {
  constructor(@Inject(NodeRuntime) private readonly runtime: NodeRuntime) {}

  /** Liveness: the process answers. Never tied to load or to the store, so it does not flap. */
  @Get('healthz')
  @HttpCode(200)
  @Header('Content-Type', 'text/plain; charset=utf-8')
  healthz(): string {
    return 'ok\n'
  }

  /** Readiness: the block store passes its self-check and gRPC serves. */
  @Get('readyz')
  readyz(@Res() res: Response): void {
    const reason = this.runtime.notReadyReason()
    res
      .status(reason === undefined ? 200 : 503)
      .type('text/plain')
      .send(reason === undefined ? 'ready\n' : `not ready: ${reason}\n`)
  }

  @Get('metrics')
  async metrics(@Res() res: Response): Promise<void> {
    const registry = this.runtime.metrics.registry
    res.type(registry.contentType).send(await registry.metrics())
  }
}
