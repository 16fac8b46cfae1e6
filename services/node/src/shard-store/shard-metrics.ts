import { Counter, Gauge, type Registry } from 'prom-client'
import type { ShardStore } from './shard-store.js'

/** The node's shard metrics (mycel_node_shard*), registered in the node's registry. */
export class ShardMetrics {
  readonly served: Counter
  readonly corrupt: Counter<'found_by'>
  readonly scrubbedBytes: Counter
  readonly repairBlocksChecked: Counter
  readonly repairs: Counter<'result'>

  constructor(registry: Registry, store: () => ShardStore | undefined) {
    const registers = [registry]
    new Gauge({
      name: 'mycel_node_shards',
      help: 'Erasure-coded shards held by this node',
      registers,
      collect() {
        this.set(store()?.stats().shards ?? 0)
      },
    })
    new Gauge({
      name: 'mycel_node_shard_bytes',
      help: 'Bytes of erasure-coded shards held by this node (headers included)',
      registers,
      collect() {
        this.set(store()?.stats().bytes ?? 0)
      },
    })
    this.served = new Counter({
      name: 'mycel_node_shards_served_total',
      help: 'Verified shards served to readers and repair',
      registers,
    })
    this.corrupt = new Counter({
      name: 'mycel_node_shards_corrupt_total',
      help: 'Stored shards that failed verification and were dropped, by what found them (read, scrub)',
      labelNames: ['found_by'],
      registers,
    })
    this.scrubbedBytes = new Counter({
      name: 'mycel_node_shard_scrub_bytes_total',
      help: 'Bytes of stored shards re-verified by scrub',
      registers,
    })
    this.repairBlocksChecked = new Counter({
      name: 'mycel_node_shard_repair_blocks_checked_total',
      help: 'Erasure-coded blocks whose missing shards repair tried to rebuild',
      registers,
    })
    this.repairs = new Counter({
      name: 'mycel_node_shard_repairs_total',
      help: 'Shards written by repair, by result (rebuilt, handed_off, unrecoverable, failed)',
      labelNames: ['result'],
      registers,
    })
    // Every series exists from the start (dashboards and alerts see 0, not "no data").
    for (const foundBy of ['read', 'scrub']) this.corrupt.inc({ found_by: foundBy }, 0)
    for (const result of ['rebuilt', 'handed_off', 'unrecoverable', 'failed']) this.repairs.inc({ result }, 0)
  }
}
