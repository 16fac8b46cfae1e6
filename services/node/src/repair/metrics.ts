import { Counter, Gauge, type Registry } from 'prom-client'
import type { PassFigures, RepairMetricsSink, RepairStatus } from './repair-engine.js'
import type { ScrubMetricsSink, ScrubStatus } from './scrubber.js'

/** Repair and scrub metrics (mycel_node_repair_*, mycel_node_scrub_*) on the node's registry. */
export class RepairMetrics implements RepairMetricsSink, ScrubMetricsSink {
  private readonly repairedBytes: Counter
  private readonly repairedBlocks: Counter
  private readonly handoffBytes: Counter
  private readonly handoffBlocks: Counter
  private readonly pushFailures: Counter
  private readonly passes: Counter
  private readonly scrubBytes: Counter
  private readonly scrubBlocks: Counter
  private readonly scrubCorrupt: Counter
  private readonly scrubRepaired: Counter
  private readonly scrubPasses: Counter

  constructor(
    registry: Registry,
    repair: () => RepairStatus | undefined,
    scrub: () => ScrubStatus | undefined,
  ) {
    const registers = [registry]
    const counter = (name: string, help: string) => new Counter({ name, help, registers })
    const gauge = (name: string, help: string, value: () => number | undefined) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(value() ?? 0)
        },
      })
    this.repairedBytes = counter(
      'mycel_node_repair_bytes_total',
      'Bytes of copies pushed to placement targets',
    )
    this.repairedBlocks = counter('mycel_node_repair_blocks_total', 'Copies pushed to placement targets')
    this.handoffBytes = counter(
      'mycel_node_repair_handoff_bytes_total',
      'Bytes of misplaced copies dropped after handoff',
    )
    this.handoffBlocks = counter(
      'mycel_node_repair_handoff_blocks_total',
      'Misplaced copies dropped after handoff',
    )
    this.pushFailures = counter(
      'mycel_node_repair_push_failures_total',
      'Copies a target refused or failed to store',
    )
    this.passes = counter('mycel_node_repair_passes_total', 'Completed repair passes')
    const last = (f: (p: PassFigures) => number) => () => {
      const p = repair()?.lastPass
      return p && f(p)
    }
    gauge(
      'mycel_node_repair_scanned_blocks',
      'Blocks examined by the last complete pass',
      last((p) => p.scanned),
    )
    gauge(
      'mycel_node_repair_under_replicated_blocks',
      'Blocks missing copies on routable targets (last complete pass; counted by the responsible holder)',
      last((p) => p.underReplicated),
    )
    gauge(
      'mycel_node_repair_misplaced_blocks',
      'Copies held here that belong elsewhere (last complete pass)',
      last((p) => p.misplaced),
    )
    gauge(
      'mycel_node_repair_unavailable_blocks',
      'Blocks with targets that cannot be checked now: left or unreachable (last complete pass)',
      last((p) => p.unavailable),
    )
    gauge(
      'mycel_node_repair_shards_missing',
      'Shards of erasure-coded blocks missing on routable owners (last complete pass; counted by the responsible holder)',
      last((p) => p.shardsMissing),
    )
    gauge(
      'mycel_node_repair_shard_blocks_unrecoverable',
      'Erasure-coded blocks with fewer than K shards found (last complete pass)',
      last((p) => p.shardBlocksUnrecoverable),
    )
    gauge(
      'mycel_node_repair_last_pass_completed_timestamp_seconds',
      'When the last repair pass completed (Unix seconds)',
      last((p) => (p.completedAt ?? 0) / 1000),
    )
    gauge('mycel_node_repair_queue_blocks', 'Blocks in the persisted repair queue', () => repair()?.queued)
    gauge(
      'mycel_node_repair_pass_scanned_blocks',
      'Blocks examined so far by the running pass',
      () => repair()?.pass?.scanned,
    )
    gauge(
      'mycel_node_repair_rate_bytes_per_second',
      'Bytes per second sent by repair and handoff (10 s window)',
      () => repair()?.rateBytesPerSecond,
    )
    this.scrubBytes = counter('mycel_node_scrub_verified_bytes_total', 'Bytes re-verified by the scrubber')
    this.scrubBlocks = counter('mycel_node_scrub_verified_blocks_total', 'Blocks re-verified by the scrubber')
    this.scrubCorrupt = counter(
      'mycel_node_scrub_corrupt_found_total',
      'Corrupt copies the scrubber found (and dropped)',
    )
    this.scrubRepaired = counter(
      'mycel_node_scrub_corrupt_repaired_total',
      'Corrupt copies rewritten from a good copy on a peer',
    )
    this.scrubPasses = counter('mycel_node_scrub_passes_total', 'Completed scrub passes')
    gauge(
      'mycel_node_scrub_pass_verified_blocks',
      'Blocks verified so far by the running scrub pass',
      () => scrub()?.pass?.blocks,
    )
    gauge(
      'mycel_node_scrub_last_pass_completed_timestamp_seconds',
      'When the last scrub pass completed (Unix seconds)',
      () => (scrub()?.lastPassCompletedAt ?? 0) / 1000,
    )
  }

  repaired(bytes: number): void {
    this.repairedBlocks.inc()
    this.repairedBytes.inc(bytes)
  }

  handedOff(bytes: number): void {
    this.handoffBlocks.inc()
    this.handoffBytes.inc(bytes)
  }

  pushFailed(): void {
    this.pushFailures.inc()
  }

  passCompleted(): void {
    this.passes.inc()
  }

  verified(bytes: number): void {
    this.scrubBlocks.inc()
    this.scrubBytes.inc(bytes)
  }

  corruptFound(): void {
    this.scrubCorrupt.inc()
  }

  corruptRepaired(): void {
    this.scrubRepaired.inc()
  }

  scrubPassCompleted(): void {
    this.scrubPasses.inc()
  }
}
