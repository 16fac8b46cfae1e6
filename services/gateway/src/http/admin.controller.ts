import { formatDurability, isRoutable, MEMBER_STATES } from '@mycel/core'
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
    const routable = this.runtime.routableCount()
    const ready = this.runtime.ready
    const why = this.runtime.membership.known
      ? `${routable} routable members, write quorum needs ${this.runtime.config.MYCEL_WRITE_QUORUM}`
      : 'no storage node has answered yet (membership unknown)'
    res
      .status(ready ? 200 : 503)
      .type('text/plain')
      .send(ready ? `ready: ${routable} routable members\n` : `not ready: ${why}\n`)
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
    const membership = this.runtime.membership
    res.json({
      nodes,
      // Routable members that answered their latest stats probe.
      nodesUp: nodes.filter((n) => isRoutable(n) && n.reachable).length,
      nodesTotal: nodes.length,
      membersByState: Object.fromEntries(
        MEMBER_STATES.map((s) => [s, nodes.filter((n) => n.state === s).length]),
      ),
      replication: cfg.MYCEL_REPLICATION,
      writeQuorum: cfg.MYCEL_WRITE_QUORUM,
      defaultDurability: formatDurability(cfg.MYCEL_DEFAULT_DURABILITY),
      ecMinBlockBytes: cfg.MYCEL_EC_MIN_BLOCK_BYTES,
      ready: this.runtime.ready,
      membership: { known: membership.known, source: membership.source ?? null },
      ...clusterRepairStatus(nodes.filter((n) => n.reachable)),
    })
  }
}
