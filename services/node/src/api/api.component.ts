import { join } from 'node:path'
import { ClusterBlockstore, clusterClientOptions, NodeClients } from '@mycel/cluster'
import { type Logger, type MembershipView, TokenAuthenticator } from '@mycel/core'
import { ApiServiceService, PinSyncServiceService } from '@mycel/proto'
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common'
import { Counter } from 'prom-client'
import { MEMBERSHIP } from '../membership/membership.provider.js'
import type { GrpcRegistrar, NodeComponent, NodeContext } from '../node-component.js'
import { PinStore } from '../pins/pin-store.js'
import { createPinSyncService, PinReplicator } from '../pins/pin-sync.js'
import { Pins } from '../pins/pins.js'
import { createApiService } from './api-service.js'

/**
 * The node's public API and its pin set. It coordinates requests over the cluster as seen through
 * the node's MembershipView (the same placement, write sessions and verified reads as the
 * gateway), registers the public ApiService and the internal PinSyncService, and runs pin
 * anti-entropy. The pins database closes only after gRPC has drained.
 */
@Injectable()
export class ApiComponent implements NodeComponent, OnApplicationShutdown {
  private clients: NodeClients | undefined
  private store: PinStore | undefined
  private replicator: PinReplicator | undefined
  private auth: TokenAuthenticator | undefined

  constructor(@Inject(MEMBERSHIP) private readonly membership: MembershipView) {}

  async register(ctx: NodeContext, grpc: GrpcRegistrar): Promise<void> {
    const cfg = ctx.config
    const log: Logger = ctx.logger
    // Peers are dialled with the node's certificate when the cluster uses mutual TLS.
    const tls = clusterClientOptions(ctx.tls, cfg.MYCEL_TLS_SERVER_NAME)
    this.clients = new NodeClients(this.membership, tls)
    const registers = [ctx.metrics.registry]
    const cluster = new ClusterBlockstore(
      this.clients,
      {
        replication: cfg.MYCEL_REPLICATION,
        writeQuorum: cfg.MYCEL_WRITE_QUORUM,
        rpcTimeoutMs: cfg.MYCEL_RPC_TIMEOUT_MS,
        maxInflightPerNode: 32,
        defaultDurability: cfg.MYCEL_DEFAULT_DURABILITY,
        ecMinBlockBytes: cfg.MYCEL_EC_MIN_BLOCK_BYTES,
        ecHedgeMs: cfg.MYCEL_EC_HEDGE_MS,
      },
      log,
      {
        blockFetches: new Counter({
          name: 'mycel_node_block_fetches_total',
          help: 'Block fetch attempts from nodes by result, for requests this node coordinates',
          labelNames: ['result'],
          registers,
        }),
        readRepairs: new Counter({
          name: 'mycel_node_read_repairs_total',
          help: 'Corrupt copies rewritten from a good copy during reads this node coordinates',
          labelNames: ['result'],
          registers,
        }),
        ecReads: new Counter({
          name: 'mycel_node_ec_reads_total',
          help: 'Erasure-coded block reads this node coordinates: direct (data shards only), degraded (decoded), failed',
          labelNames: ['result'],
          registers,
        }),
        shardFetches: new Counter({
          name: 'mycel_node_shard_fetches_total',
          help: 'Shard requests to nodes by result, for reads this node coordinates',
          labelNames: ['result'],
          registers,
        }),
        shardReadRepairs: new Counter({
          name: 'mycel_node_shard_read_repairs_total',
          help: 'Shards rebuilt during reads this node coordinates and written back to their owners',
          labelNames: ['result'],
          registers,
        }),
      },
    )
    this.store = await PinStore.open({
      path: join(cfg.MYCEL_DATA_DIR, 'pins'),
      syncWrites: cfg.MYCEL_SYNC_WRITES,
      logger: log,
    })
    this.replicator = new PinReplicator({
      store: this.store,
      membership: this.membership,
      selfAddress: cfg.MYCEL_ADVERTISE_ADDRESS ?? cfg.MYCEL_GRPC_LISTEN,
      ...tls,
      rpcTimeoutMs: cfg.MYCEL_RPC_TIMEOUT_MS,
      syncIntervalMs: cfg.MYCEL_PIN_SYNC_INTERVAL_MS,
      logger: log,
    })
    this.auth =
      cfg.MYCEL_API_TOKENS_FILE === undefined
        ? undefined
        : TokenAuthenticator.fromFile(cfg.MYCEL_API_TOKENS_FILE, log.child({ component: 'node:auth' }))
    const deps = { log, metrics: ctx.metrics }
    grpc.addService(PinSyncServiceService, createPinSyncService(this.store, deps), 'mycel/v1/pin.proto')
    grpc.addService(
      ApiServiceService,
      createApiService({
        config: cfg,
        nodeId: ctx.nodeId,
        cluster,
        clients: this.clients,
        membership: this.membership,
        pins: new Pins(this.store, this.replicator, cluster, ctx.nodeId),
        auth: this.auth,
        logger: log,
        metrics: ctx.metrics,
      }),
      'mycel/v1/api.proto',
    )
  }

  start(ctx: NodeContext): void {
    this.replicator?.start()
    const members = this.membership.placementMembers().length
    if (members < ctx.config.MYCEL_REPLICATION) {
      // Placement clamps R to the members it knows: a node started without MYCEL_PEERS (or before
      // membership found the others) would write fewer copies than configured.
      ctx.logger.warn(
        { members, replication: ctx.config.MYCEL_REPLICATION },
        'this node knows fewer storage nodes than MYCEL_REPLICATION: uploads through its public API keep only that many copies (set MYCEL_PEERS)',
      )
    }
  }

  async stop(): Promise<void> {
    await this.replicator?.stop()
    this.auth?.close()
  }

  /** After gRPC drained (NodeRuntime's beforeApplicationShutdown): no call can reach the store. */
  async onApplicationShutdown(): Promise<void> {
    this.clients?.close()
    await this.store?.close()
  }
}
