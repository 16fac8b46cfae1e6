import type { MembershipView } from '@mycel/core'
import { createServiceRegistry, registerMembershipGauge } from '@mycel/telemetry'
import type { NextFunction, Request, Response } from 'express'
import { Counter, Gauge, Histogram } from 'prom-client'

/** What the gateway's metrics read at scrape time. */
export interface GatewayMetricsSources {
  membership: () => MembershipView | undefined
  nodesUp: () => number
  ready: () => boolean
}

/** The gateway's Prometheus metrics (mycel_gateway_*). */
export class GatewayMetrics {
  readonly registry = createServiceRegistry('mycel_gateway_')
  readonly httpDuration = new Histogram({
    name: 'mycel_gateway_http_request_duration_seconds',
    help: 'HTTP request duration by route template, method and status ("aborted" when the client left first)',
    labelNames: ['route', 'method', 'status'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120],
    registers: [this.registry],
  })
  readonly httpInFlight = new Gauge({
    name: 'mycel_gateway_http_requests_in_flight',
    help: 'HTTP requests being served',
    registers: [this.registry],
  })
  readonly bytesIn = new Counter({
    name: 'mycel_gateway_upload_bytes_total',
    help: 'File bytes received by uploads',
    registers: [this.registry],
  })
  readonly bytesOut = new Counter({
    name: 'mycel_gateway_download_bytes_total',
    help: 'Bytes sent by downloads',
    registers: [this.registry],
  })
  readonly blockFetches = new Counter({
    name: 'mycel_gateway_block_fetches_total',
    help: 'Block fetch attempts from nodes by result',
    labelNames: ['result'],
    registers: [this.registry],
  })
  readonly readRepairs = new Counter({
    name: 'mycel_gateway_read_repairs_total',
    help: 'Corrupt copies rewritten from a good copy during reads',
    labelNames: ['result'],
    registers: [this.registry],
  })
  readonly blocksWritten = new Counter({
    name: 'mycel_gateway_blocks_written_total',
    help: 'Blocks written at the write quorum by uploads and imports',
    registers: [this.registry],
  })
  readonly blockCopiesWritten = new Counter({
    name: 'mycel_gateway_block_copies_written_total',
    help: 'Block copies acknowledged as durable by nodes (R per block when every node answers)',
    registers: [this.registry],
  })

  readonly ecReads = new Counter({
    name: 'mycel_gateway_ec_reads_total',
    help: 'Erasure-coded block reads by result: direct (data shards only), degraded (decoded from parity), failed',
    labelNames: ['result'],
    registers: [this.registry],
  })
  readonly shardFetches = new Counter({
    name: 'mycel_gateway_shard_fetches_total',
    help: 'Shard requests to nodes by result (ok, missing, corrupt, unreachable)',
    labelNames: ['result'],
    registers: [this.registry],
  })
  readonly shardReadRepairs = new Counter({
    name: 'mycel_gateway_shard_read_repairs_total',
    help: 'Shards rebuilt during reads and written back to owners that lacked them',
    labelNames: ['result'],
    registers: [this.registry],
  })
  readonly refusedRequests = new Counter({
    name: 'mycel_gateway_refused_requests_total',
    help: 'Requests refused by a limit or by authentication, by reason',
    labelNames: ['reason'],
    registers: [this.registry],
  })

  constructor(sources: GatewayMetricsSources) {
    for (const result of ['ok', 'corrupt', 'unreachable']) this.blockFetches.inc({ result }, 0)
    for (const result of ['ok', 'failed']) this.readRepairs.inc({ result }, 0)
    for (const result of ['direct', 'degraded', 'failed']) this.ecReads.inc({ result }, 0)
    for (const result of ['ok', 'missing', 'corrupt', 'unreachable']) this.shardFetches.inc({ result }, 0)
    for (const result of ['ok', 'failed']) this.shardReadRepairs.inc({ result }, 0)
    registerMembershipGauge(this.registry, 'mycel_gateway_members', sources.membership)
    new Gauge({
      name: 'mycel_gateway_nodes_up',
      help: 'Storage nodes that answered the latest probe (every 2 s)',
      registers: [this.registry],
      collect() {
        this.set(sources.nodesUp())
      },
    })
    new Gauge({
      name: 'mycel_gateway_ready',
      help: 'Whether the gateway is ready (1): at least W nodes answer',
      registers: [this.registry],
      collect() {
        this.set(sources.ready() ? 1 : 0)
      },
    })
  }

  /**
   * Express middleware: one observation per request, labelled with the matched route template
   * (`/ipfs/*path`, never the raw URL, so label values stay few), or "unmatched".
   */
  httpMiddleware() {
    return (req: Request, res: Response, next: NextFunction): void => {
      // A response gathers one 'close' listener per stage that watches it (stream pipelines,
      // disconnect handling, this observer, tracing); Node's default of 10 is a leak heuristic for
      // long-lived emitters and made each traced download print a warning (and pay for it).
      res.setMaxListeners(Math.max(res.getMaxListeners(), 32))
      const end = this.httpDuration.startTimer()
      this.httpInFlight.inc()
      res.once('close', () => {
        this.httpInFlight.dec()
        const route = (req.route as { path?: unknown } | undefined)?.path
        end({
          route: typeof route === 'string' ? route : 'unmatched',
          method: req.method,
          status: res.writableFinished ? String(res.statusCode) : 'aborted',
        })
      })
      next()
    }
  }
}
