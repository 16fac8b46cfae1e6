import type { Server } from '@grpc/grpc-js'
import type { Logger, NodeEnv, TlsFiles } from '@mycel/core'
import type { GetNodeStatsResponse } from '@mycel/proto'
import type { NodeMetrics } from './admin/metrics.js'
import type { BlockStore, NodeStateStore } from './block-store/block-store.js'
import type { ShardMetrics } from './shard-store/shard-metrics.js'
import type { ShardStore } from './shard-store/shard-store.js'

/** What the runtime hands each component once the node's identity and store exist. */
export interface NodeContext {
  config: NodeEnv
  nodeId: string
  store: BlockStore
  /** Node-level state in the same database (cursors, the repair queue). */
  state: NodeStateStore
  metrics: NodeMetrics
  logger: Logger
  /**
   * The node's TLS files (undefined without TLS): clients this node opens to peers use them too
   * (`clusterClientOptions` in @mycel/cluster), so peers accept its calls.
   */
  tls?: TlsFiles | undefined
  /** Adds fields to this node's GetNodeStats answers (what the gateway's status shows). */
  addNodeStats(provider: () => Partial<GetNodeStatsResponse>): void
  /** Erasure-coded shards held beside the blocks, and their metrics. */
  shards?: ShardStore
  shardMetrics?: ShardMetrics
}

/** Registration of extra gRPC services before the server binds. */
export interface GrpcRegistrar {
  /**
   * Adds a service; `protoFile` (relative to proto/) is also served by reflection. A service is
   * internal (callers need a cluster certificate when TLS is on) unless `public` is set: then any
   * client may call it and the service checks its own credentials (bearer tokens).
   */
  addService(
    definition: Parameters<Server['addService']>[0],
    implementation: Parameters<Server['addService']>[1],
    protoFile: string,
    options?: { public?: boolean },
  ): void
}

/**
 * A part of the node with a lifecycle tied to the runtime's (membership, repair, public API...).
 * Components are listed in NodeModule; the runtime calls them in that order, and `stop` in
 * reverse order before gRPC drains, so a component can still talk to peers while it stops.
 */
export interface NodeComponent {
  /** After the store is open, before gRPC serves: register gRPC services here. */
  register?(ctx: NodeContext, grpc: GrpcRegistrar): void | Promise<void>
  /** Once gRPC serves: peers can reach this node. */
  start?(ctx: NodeContext & { grpcAddress: string }): void | Promise<void>
  /** At shutdown, before gRPC drains. */
  stop?(): void | Promise<void>
  /** Why the node must not receive traffic yet (its /readyz answers 503), or undefined. */
  notReadyReason?(): string | undefined
}

export const NODE_COMPONENTS = Symbol('NODE_COMPONENTS')
