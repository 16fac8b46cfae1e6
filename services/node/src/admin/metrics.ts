import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import type { BlockStore } from '../block-store/block-store.js'

/** The node's Prometheus metrics (mycel_node_*), one registry per process. */
export class NodeMetrics {
  readonly registry = new Registry()
  readonly rpcDuration = new Histogram({
    name: 'mycel_node_rpc_duration_seconds',
    help: 'Duration of internal gRPC calls by method and result code',
    labelNames: ['method', 'code'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  })
  readonly bytesIn = new Counter({
    name: 'mycel_node_block_bytes_written_total',
    help: 'Block bytes received for storage',
    registers: [this.registry],
  })
  readonly bytesOut = new Counter({
    name: 'mycel_node_block_bytes_read_total',
    help: 'Block bytes served',
    registers: [this.registry],
  })

  constructor(store: () => BlockStore | undefined) {
    collectDefaultMetrics({ register: this.registry, prefix: 'mycel_node_' })
    new Gauge({
      name: 'mycel_node_blocks',
      help: 'Blocks held by this node',
      registers: [this.registry],
      collect() {
        this.set(store()?.stats().blocks ?? 0)
      },
    })
    new Gauge({
      name: 'mycel_node_block_bytes',
      help: 'Bytes of block data held by this node',
      registers: [this.registry],
      collect() {
        this.set(store()?.stats().bytes ?? 0)
      },
    })
  }
}
