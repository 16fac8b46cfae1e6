import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client'

/** The gateway's Prometheus metrics (mycel_gateway_*). */
export class GatewayMetrics {
  readonly registry = new Registry()
  readonly httpDuration = new Histogram({
    name: 'mycel_gateway_http_request_duration_seconds',
    help: 'HTTP request duration by route and status',
    labelNames: ['route', 'method', 'status'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
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

  readonly refusedRequests = new Counter({
    name: 'mycel_gateway_refused_requests_total',
    help: 'Requests refused by a limit or by authentication, by reason',
    labelNames: ['reason'],
    registers: [this.registry],
  })

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'mycel_gateway_' })
  }
}
