import { statfs } from 'node:fs/promises'
import { createServiceRegistry } from '@mycel/telemetry'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { BlockStore, EngineStats, WriteBatchReport } from '../block-store/block-store.js'

/** What the node's metrics read at scrape time. */
export interface NodeMetricsSources {
  store: () => BlockStore | undefined
  ready: () => boolean
  /** The data directory, whose filesystem's size and free space are reported. */
  dataDir: string
  /** MYCEL_CAPACITY_BYTES; 0 means the filesystem's size. */
  capacityBytes: number
}

/** The node's Prometheus metrics (mycel_node_*), one registry per process. */
export class NodeMetrics {
  readonly registry = createServiceRegistry('mycel_node_')
  /** gRPC handling time by method and status code name; PutBlocks is observed per block (receipt to ack). */
  readonly rpcDuration = new Histogram({
    name: 'mycel_node_rpc_duration_seconds',
    help: 'Duration of gRPC calls by method and status code (PutBlocks: per block, from receipt to acknowledgement)',
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
  /** Acknowledged block writes: "new" were stored, "existing" were already held. */
  readonly blocksWritten = zeroed(
    new Counter({
      name: 'mycel_node_blocks_written_total',
      help: 'Blocks acknowledged as durable, by whether they were new to this node or already held',
      labelNames: ['result'],
      registers: [this.registry],
    }),
    'result',
    ['new', 'existing'],
  )
  readonly batchDuration = new Histogram({
    name: 'mycel_node_rocksdb_write_batch_duration_seconds',
    help: 'RocksDB group-commit batches: time from the batch start to its synced write (writer-thread round trip)',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  })
  readonly batchOps = new Histogram({
    name: 'mycel_node_rocksdb_write_batch_ops',
    help: 'Operations (block puts and deletes) per RocksDB group-commit batch',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    registers: [this.registry],
  })
  readonly batchFailures = new Counter({
    name: 'mycel_node_rocksdb_write_batch_failures_total',
    help: 'RocksDB write batches that failed (disk full, I/O error); the node turns not-ready',
    registers: [this.registry],
  })
  // Membership (mycel_node_membership_*) and repair/scrub (mycel_node_repair_*, mycel_node_scrub_*)
  // register their own metrics on this registry (membership/metrics.ts, repair/metrics.ts).

  constructor(sources: NodeMetricsSources) {
    const { registry } = this
    const store = sources.store
    gauge(registry, 'mycel_node_blocks', 'Blocks held by this node', () => store()?.stats().blocks)
    gauge(
      registry,
      'mycel_node_block_bytes',
      'Bytes of block data held by this node',
      () => store()?.stats().bytes,
    )
    gauge(
      registry,
      'mycel_node_ready',
      'Whether this node is ready (1): block store healthy, gRPC serving, membership joined',
      () => (sources.ready() ? 1 : 0),
    )
    gauge(
      registry,
      'mycel_node_store_healthy',
      'Whether the block store passes its self-check (1) or not (0)',
      () => {
        const s = store()
        return s === undefined ? 0 : s.health().ok ? 1 : 0
      },
    )

    // Filesystem of the data directory: one statfs per scrape, shared by the gauges below.
    let fs: { at: number; value: Promise<{ size: number; available: number } | undefined> } | undefined
    const filesystem = () => {
      if (fs === undefined || Date.now() - fs.at > 1000) {
        fs = {
          at: Date.now(),
          value: statfs(sources.dataDir).then(
            (s) => ({ size: s.blocks * s.bsize, available: s.bavail * s.bsize }),
            () => undefined,
          ),
        }
      }
      return fs.value
    }
    gauge(
      registry,
      'mycel_node_filesystem_size_bytes',
      'Size of the filesystem holding the data directory',
      async () => (await filesystem())?.size,
    )
    gauge(
      registry,
      'mycel_node_filesystem_available_bytes',
      'Bytes available to the node on the filesystem holding the data directory',
      async () => (await filesystem())?.available,
    )
    gauge(
      registry,
      'mycel_node_capacity_bytes',
      'Capacity this node offers: MYCEL_CAPACITY_BYTES, or the filesystem size when that is 0',
      async () => (sources.capacityBytes > 0 ? sources.capacityBytes : (await filesystem())?.size),
    )

    const engine = (key: keyof EngineStats) => () => store()?.engineStats?.()?.[key]
    const rocks: Array<[string, keyof EngineStats, string]> = [
      [
        'estimated_keys',
        'estimatedKeys',
        'Estimated keys in the block column family (rocksdb.estimate-num-keys)',
      ],
      ['live_sst_bytes', 'liveSstBytes', 'Bytes of live SST files of the block column family'],
      [
        'sst_bytes',
        'totalSstBytes',
        'Bytes of all SST files of the block column family, obsolete ones included',
      ],
      ['memtable_bytes', 'memtableBytes', 'Bytes in the memtables of the block column family'],
      [
        'pending_compaction_bytes',
        'pendingCompactionBytes',
        'Estimated bytes compaction still has to rewrite',
      ],
      ['running_compactions', 'runningCompactions', 'Compactions running now'],
      ['running_flushes', 'runningFlushes', 'Memtable flushes running now'],
      [
        'background_errors',
        'backgroundErrors',
        'Background errors RocksDB has seen since the database was opened',
      ],
      [
        'write_stopped',
        'writeStopped',
        'Whether RocksDB has stopped writes (1), e.g. too many pending compactions',
      ],
    ]
    for (const [suffix, key, help] of rocks)
      gauge(registry, `mycel_node_rocksdb_${suffix}`, help, engine(key))
  }

  /** Records one RocksDB write batch (the store's observer). */
  observeBatch(report: WriteBatchReport): void {
    this.batchDuration.observe(report.seconds)
    this.batchOps.observe(report.ops)
    if (!report.ok) {
      this.batchFailures.inc()
      return
    }
    if (report.newBlocks > 0) this.blocksWritten.inc({ result: 'new' }, report.newBlocks)
    if (report.existingBlocks > 0) this.blocksWritten.inc({ result: 'existing' }, report.existingBlocks)
  }
}

/** A gauge read at scrape time; undefined leaves it NaN (unknown), e.g. before the store opens. */
function gauge(
  registry: Registry,
  name: string,
  help: string,
  read: () => number | undefined | Promise<number | undefined>,
): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    async collect() {
      this.set((await read()) ?? Number.NaN)
    },
  })
}

/** A labelled counter with its known label values at 0, so rate() works from the first scrape. */
function zeroed<L extends string>(counter: Counter<L>, label: L, values: readonly string[]): Counter<L> {
  for (const v of values) counter.inc({ [label]: v } as Partial<Record<L, string>>, 0)
  return counter
}
