import { formatDurability } from '@mycel/core'
import { Controller, Get, Inject, Res } from '@nestjs/common'
import type { Response } from 'express'
import { GatewayRuntime } from '../gateway-runtime.js'
import { clusterRepairStatus } from '../repair-status.js'

/** Health, readiness, metrics, and the cluster status for people and scripts. */
@Controller()
export class AdminController {
  constructor(@Inject(GatewayRuntime) private readonly runtime: GatewayRuntime) {}

  @Get('healthz')
  healthz(@Res() res: Response): void {
    res.type('text/plain').send('ok\n')
  }

  @Get('readyz')
  readyz(@Res() res: Response): void {
    const up = this.runtime.nodeStatuses().filter((n) => n.state === 'up').length
    const ready = this.runtime.ready
    res
      .status(ready ? 200 : 503)
      .type('text/plain')
      .send(
        ready
          ? `ready: ${up} nodes up\n`
          : `not ready: ${up} nodes up, write quorum needs ${this.runtime.config.MYCEL_WRITE_QUORUM}\n`,
      )
  }

  @Get('metrics')
  async metrics(@Res() res: Response): Promise<void> {
    res.type(this.runtime.metrics.registry.contentType).send(await this.runtime.metrics.registry.metrics())
  }

  @Get('mycel/v1/status')
  async status(@Res() res: Response): Promise<void> {
    await this.runtime.probeAll()
    const nodes = this.runtime.nodeStatuses()
    const cfg = this.runtime.config
    res.json({
      nodes,
      nodesUp: nodes.filter((n) => n.state === 'up').length,
      nodesTotal: nodes.length,
      replication: cfg.MYCEL_REPLICATION,
      writeQuorum: cfg.MYCEL_WRITE_QUORUM,
      defaultDurability: formatDurability(cfg.MYCEL_DEFAULT_DURABILITY),
      ecMinBlockBytes: cfg.MYCEL_EC_MIN_BLOCK_BYTES,
      ready: this.runtime.ready,
      membership: 'static',
      ...clusterRepairStatus(nodes.filter((n) => n.state === 'up')),
    })
  }
}
