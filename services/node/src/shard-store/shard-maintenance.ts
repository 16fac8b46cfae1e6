import { setTimeout as sleep } from 'node:timers/promises'
import { handOffShard, NodeClients, repairShards, type ShardRepairConfig } from '@mycel/cluster'
import {
  blockKey,
  cidOfMultihash,
  isAbortError,
  type Logger,
  type MembershipView,
  type NodeEnv,
  placeCopies,
} from '@mycel/core'
import type { NodeComponent, NodeContext } from '../node-component.js'
import type { ShardMetrics } from './shard-metrics.js'
import type { ShardStore, StoredShardEntry } from './shard-store.js'

/** Shards read per scan step: bounds memory and lets a stop interrupt a pass quickly. */
const SCAN_BATCH = 64

/**
 * Background care of this node's shards, as a node component:
 * - scrub re-reads every stored shard at MYCEL_SHARD_SCRUB_BYTES_PER_SEC and verifies its
 *   checksum; a corrupt shard is dropped and rebuilt at once from K others (repairShards with
 *   `force`);
 * - repair walks the blocks this node holds shards of at MYCEL_SHARD_REPAIR_BLOCKS_PER_SEC: a
 *   shard whose owner is now another node (placement moved) is handed off, and the block's
 *   owners are surveyed; the first owner holding its shard rebuilds what the others lack.
 * Both passes are rate-limited and restart after their interval; their progress is in the
 * mycel_node_shard_* metrics. The repair engine can take these passes over by calling
 * repairShards and handOffShard itself (see ARCHITECTURE.md, Erasure coding).
 */
export class ShardMaintenance implements NodeComponent {
  private readonly stopping = new AbortController()
  private readonly loops: Promise<void>[] = []
  private clients: NodeClients | undefined

  constructor(
    private readonly membership: MembershipView,
    private readonly config: NodeEnv,
  ) {}

  start(ctx: NodeContext & { grpcAddress: string }): void {
    const shards = ctx.shards
    const metrics = ctx.shardMetrics
    if (shards === undefined || metrics === undefined) return
    const clients = new NodeClients(this.membership)
    this.clients = clients
    const log = ctx.logger.child({ component: 'node:shard-maintenance' })
    // Static membership names nodes by address, as staticNodeMembership does for this one.
    const self =
      this.membership.self?.id ?? this.config.MYCEL_ADVERTISE_ADDRESS ?? this.config.MYCEL_GRPC_LISTEN
    const run: Pass = {
      shards,
      metrics,
      clients,
      log,
      self,
      repair: { rpcTimeoutMs: this.config.MYCEL_RPC_TIMEOUT_MS, logger: log },
    }
    const cfg = this.config
    if (cfg.MYCEL_SHARD_SCRUB_BYTES_PER_SEC > 0) {
      this.loops.push(
        this.forever('scrub', cfg.MYCEL_SHARD_SCRUB_INTERVAL_MS, log, () => this.scrubPass(run)),
      )
    }
    if (cfg.MYCEL_SHARD_REPAIR_BLOCKS_PER_SEC > 0) {
      this.loops.push(
        this.forever('repair', cfg.MYCEL_SHARD_REPAIR_INTERVAL_MS, log, () => this.repairPass(run)),
      )
    }
  }

  async stop(): Promise<void> {
    this.stopping.abort()
    await Promise.allSettled(this.loops)
    this.clients?.close()
  }

  private async forever(
    name: string,
    intervalMs: number,
    log: Logger,
    pass: () => Promise<void>,
  ): Promise<void> {
    const signal = this.stopping.signal
    while (!signal.aborted) {
      try {
        await pass()
        await sleep(intervalMs, undefined, { signal })
      } catch (err) {
        if (isAbortError(err) || signal.aborted) return
        log.error({ err: String(err) }, `shard ${name} pass failed; retrying after its interval`)
        await sleep(intervalMs, undefined, { signal }).catch(() => undefined)
      }
    }
  }

  /** One pass over every stored shard, verifying each at the configured byte rate. */
  private async scrubPass(p: Pass): Promise<void> {
    const signal = this.stopping.signal
    const rate = this.config.MYCEL_SHARD_SCRUB_BYTES_PER_SEC
    let after: Buffer | undefined
    for (;;) {
      const entries = await p.shards.scan(after, SCAN_BATCH)
      if (entries.length === 0) break
      for (const entry of entries) {
        signal.throwIfAborted()
        const started = Date.now()
        const good = await p.shards.verify(entry)
        p.metrics.scrubbedBytes.inc(entry.size)
        // The store counted it in mycel_node_shards_corrupt_total and dropped it: rebuild it now.
        if (!good) await this.repairBlock(p, entry, true)
        const due = (entry.size / rate) * 1000 - (Date.now() - started)
        if (due > 1) await sleep(due, undefined, { signal })
      }
      after = entries.at(-1)?.key
    }
    p.metrics.scrubPasses.inc()
  }

  /** One pass over the blocks this node holds shards of: handoffs, then a repair survey of each. */
  private async repairPass(p: Pass): Promise<void> {
    const signal = this.stopping.signal
    const perBlockMs = 1000 / this.config.MYCEL_SHARD_REPAIR_BLOCKS_PER_SEC
    let after: Buffer | undefined
    let previous = ''
    for (;;) {
      const entries = await p.shards.scan(after, SCAN_BATCH)
      if (entries.length === 0) return
      for (const entry of entries) {
        // Keys sort by block, then code: the first key of each (block, K, M) starts its check.
        const group = `${Buffer.from(entry.multihash).toString('hex')}/${entry.k}+${entry.m}`
        if (group === previous) continue
        previous = group
        signal.throwIfAborted()
        const started = Date.now()
        await this.repairBlock(p, entry, false)
        const due = perBlockMs - (Date.now() - started)
        if (due > 1) await sleep(due, undefined, { signal })
      }
      after = entries.at(-1)?.key
    }
  }

  private async repairBlock(p: Pass, entry: StoredShardEntry, force: boolean): Promise<void> {
    const cid = cidOfMultihash(entry.multihash)
    const { k, m } = entry
    try {
      const nodes = p.clients.nodes
      if (nodes.length < k + m) return // not enough members to place the shards: nothing to do
      // Shard data is read only for a shard to hand off; the survey needs the index alone.
      const owners = placeCopies(blockKey(cid), nodes, k + m)
      const [refs = []] = await p.shards.list([cid])
      for (const ref of refs) {
        if (ref.k !== k || ref.m !== m || owners[ref.index]?.id === p.self) continue
        const { shards } = await p.shards.get(cid, { k, m, indices: [ref.index] })
        for (const shard of shards) {
          const drop = () => p.shards.delete(cid, [shard]).then(() => undefined)
          const result = await handOffShard(shard, nodes, p.self, drop, p.repair)
          if (result === 'handed_off' || result === 'owner_has') {
            p.metrics.repairs.inc({ result: 'handed_off' })
            p.log.info(
              { cid: cid.toString(), shard: shard.index, result },
              'misplaced shard handed off to its owner',
            )
          }
        }
      }
      const report = await repairShards({ cid, k, m, nodes, self: p.self, force }, p.repair)
      p.metrics.repairBlocksChecked.inc()
      if (report.rebuilt.length > 0) {
        p.metrics.repairs.inc({ result: 'rebuilt' }, report.rebuilt.length)
        p.log.info(
          { cid: cid.toString(), rebuilt: report.rebuilt, k, m },
          'rebuilt missing shards on their owners',
        )
      }
      if (report.unrecoverable) p.metrics.repairs.inc({ result: 'unrecoverable' })
      const failed = report.skipped ? 0 : report.missing.length - report.rebuilt.length
      if (failed > 0 && !report.unrecoverable) p.metrics.repairs.inc({ result: 'failed' }, failed)
    } catch (err) {
      if (isAbortError(err)) throw err
      p.metrics.repairs.inc({ result: 'failed' })
      p.log.warn({ cid: cid.toString(), err: String(err) }, 'shard repair of a block failed')
    }
  }
}

interface Pass {
  shards: ShardStore
  metrics: ShardMetrics
  clients: NodeClients
  log: Logger
  self: string
  repair: ShardRepairConfig
}
