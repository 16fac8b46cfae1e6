import { clusterClientOptions, NodeClients } from '@mycel/cluster'
import { cidOfMultihash, type MembershipView, type NodeEnv, replicate } from '@mycel/core'
import type { GetNodeStatsResponse, RepairStats, ScrubStats } from '@mycel/proto'
import { untraced } from '@mycel/telemetry'
import { Inject, Injectable } from '@nestjs/common'
import { MEMBERSHIP } from '../membership/membership.provider.js'
import type { NodeComponent, NodeContext } from '../node-component.js'
import { NODE_CONFIG } from '../node-runtime.js'
import { RepairMetrics } from './metrics.js'
import { GrpcRepairPeers } from './peers.js'
import { RepairEngine, type RepairStatus } from './repair-engine.js'
import { Scrubber, type ScrubStatus } from './scrubber.js'
import { ShardRepair } from './shard-repair.js'

/**
 * Background repair, rebalance and scrubbing of this node's blocks and of its erasure-coded
 * shards (the same engine and scrubber: ShardRepair does the shard-specific work), with their
 * status.
 */
@Injectable()
export class RepairComponent implements NodeComponent {
  private engine: RepairEngine | undefined
  private scrubber: Scrubber | undefined
  private clients: NodeClients | undefined
  private metrics: RepairMetrics | undefined

  constructor(
    @Inject(MEMBERSHIP) private readonly membership: MembershipView,
    @Inject(NODE_CONFIG) private readonly config: NodeEnv,
  ) {}

  register(ctx: NodeContext): void {
    ctx.addNodeStats(
      (): Partial<GetNodeStatsResponse> => ({
        repair: repairStats(this.engine?.status()),
        scrub: scrubStats(this.scrubber?.status()),
      }),
    )
    this.metrics = new RepairMetrics(
      ctx.metrics.registry,
      () => this.engine?.status(),
      () => this.scrubber?.status(),
    )
  }

  async start(ctx: NodeContext): Promise<void> {
    const cfg = this.config
    const clients = new NodeClients(this.membership, clusterClientOptions(ctx.tls, cfg.MYCEL_TLS_SERVER_NAME))
    this.clients = clients
    const peers = new GrpcRepairPeers(clients, cfg.MYCEL_RPC_TIMEOUT_MS, ctx.logger)
    const self = () => this.membership.self
    const metrics = this.metrics
    const defaultPolicy = replicate(cfg.MYCEL_REPLICATION)
    const common = {
      store: ctx.store,
      state: ctx.state,
      membership: this.membership,
      self,
      peers,
      logger: ctx.logger,
      metrics,
    }
    const shards = ctx.shards
    const shardMetrics = ctx.shardMetrics
    const shardRepair =
      shards === undefined || shardMetrics === undefined
        ? undefined
        : new ShardRepair(
            { shards, clients, logger: ctx.logger, metrics: shardMetrics },
            { rpcTimeoutMs: cfg.MYCEL_RPC_TIMEOUT_MS },
          )
    const engine = new RepairEngine(
      { ...common, ...(shardRepair ? { shards: shardRepair } : {}) },
      {
        defaultPolicy,
        rateBytesPerSecond: cfg.MYCEL_REPAIR_RATE_BYTES,
        concurrency: cfg.MYCEL_REPAIR_CONCURRENCY,
        intervalMs: cfg.MYCEL_REPAIR_INTERVAL_MS,
      },
    )
    const scrubber = new Scrubber(
      {
        ...common,
        ...(shards && shardMetrics
          ? {
              shards: {
                store: shards,
                verified: (bytes: number) => shardMetrics.scrubbedBytes.inc(bytes),
                repair: async (e) =>
                  (await engine.repairShardsNow({
                    cid: cidOfMultihash(e.multihash),
                    key: e.multihash,
                    k: e.k,
                    m: e.m,
                  })) > 0,
              },
            }
          : {}),
      },
      {
        defaultPolicy,
        rateBytesPerSecond: cfg.MYCEL_SCRUB_RATE_BYTES,
        intervalMs: cfg.MYCEL_SCRUB_INTERVAL_MS,
      },
    )
    // Background loops run untraced: every pass and drain would otherwise start root traces of
    // their gRPC calls (HasBlocks, PutBlocks, GetBlock, ListShards) on each node, all the time.
    this.engine = engine
    this.scrubber = scrubber
    await untraced(async () => {
      await engine.start()
      await scrubber.start()
    })
  }

  async stop(): Promise<void> {
    await Promise.all([this.engine?.stop(), this.scrubber?.stop()])
    this.clients?.close()
  }
}

function repairStats(s: RepairStatus | undefined): RepairStats | undefined {
  if (s === undefined) return undefined
  const last = s.lastPass
  return {
    shardsMissing: BigInt(last?.shardsMissing ?? 0),
    shardBlocksUnrecoverable: BigInt(last?.shardBlocksUnrecoverable ?? 0),
    shardsRebuilt: BigInt(s.shardsRebuilt),
    shardsHandedOff: BigInt(s.shardsHandedOff),
    shardsMisplaced: BigInt(last?.shardsMisplaced ?? 0),
    blocksScanned: BigInt(last?.scanned ?? 0),
    underReplicated: BigInt(last?.underReplicated ?? 0),
    misplaced: BigInt(last?.misplaced ?? 0),
    unavailable: BigInt(last?.unavailable ?? 0),
    queued: BigInt(s.queued),
    blocksRepaired: BigInt(s.blocksRepaired),
    bytesRepaired: BigInt(s.bytesRepaired),
    blocksHandedOff: BigInt(s.blocksHandedOff),
    bytesHandedOff: BigInt(s.bytesHandedOff),
    rateBytesPerSecond: s.rateBytesPerSecond,
    lastPassStartedAtMs: BigInt(last?.startedAt ?? 0),
    lastPassCompletedAtMs: BigInt(last?.completedAt ?? 0),
    passRunning: s.pass !== undefined,
    passScanned: BigInt(s.pass?.scanned ?? 0),
  }
}

function scrubStats(s: ScrubStatus | undefined): ScrubStats | undefined {
  if (s === undefined) return undefined
  return {
    passBlocks: BigInt(s.pass?.blocks ?? 0),
    passBytes: BigInt(s.pass?.bytes ?? 0),
    lastPassCompletedAtMs: BigInt(s.lastPassCompletedAt ?? 0),
    corruptFound: BigInt(s.corruptFound),
    corruptRepaired: BigInt(s.corruptRepaired),
    rateBytesPerSecond: BigInt(s.rateBytesPerSecond),
  }
}
