import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Server } from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { ReflectionService } from '@grpc/reflection'
import {
  type Logger,
  MAX_GRPC_MESSAGE_BYTES,
  type NodeEnv,
  replicate,
  splitHostPort,
  TlsFiles,
  tlsFilesConfig,
} from '@mycel/core'
import { BlockServiceService, type GetNodeStatsResponse, ShardServiceService } from '@mycel/proto'
import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common'
import { HealthImplementation } from 'grpc-health-check'
import { NodeMetrics } from './admin/metrics.js'
import type { BlockStore } from './block-store/block-store.js'
import { RocksBlockStore } from './block-store/rocks-block-store.js'
import { createBlockService, unaryRunner } from './grpc/block-service.js'
import { ALWAYS_PUBLIC_SERVICES, nodeServerCredentials, requireClusterPeer } from './grpc/peer-auth.js'
import { createShardService } from './grpc/shard-service.js'
import { loadOrCreateNodeId } from './identity.js'
import { NODE_COMPONENTS, type NodeComponent, type NodeContext } from './node-component.js'
import { RocksShardStore } from './shard-store/rocks-shard-store.js'
import { ShardMetrics } from './shard-store/shard-metrics.js'

export const NODE_CONFIG = Symbol('NODE_CONFIG')
export const LOGGER = Symbol('LOGGER')

/**
 * HTTP/2 flow-control windows for block streams. Node's default is 64 KiB per stream and per
 * connection, so a 256 KiB block needs several WINDOW_UPDATE round trips, each waiting on this
 * node's event loop: measured here it capped an upload near 35 MB/s with every process mostly
 * idle. grpc-js exposes no server option for it, so the settings and the connection window are
 * set on its HTTP/2 servers and sessions directly (checked against grpc-js 1.14).
 */
const HTTP2_STREAM_WINDOW_BYTES = 4 * 1024 * 1024
const HTTP2_CONNECTION_WINDOW_BYTES = 32 * 1024 * 1024
/** Larger DATA frames: a 256 KiB block arrives in a few frames instead of sixteen. */
const HTTP2_MAX_FRAME_BYTES = 1024 * 1024

/**
 * With TLS, connections are closed gracefully (GOAWAY, calls in flight finish) after this age, so
 * a rotated CA or certificate applies to every peer within the hour, not only to new peers.
 */
const TLS_MAX_CONNECTION_AGE_MS = 3_600_000

function widenHttp2Windows(server: Server): void {
  const internals = server as unknown as {
    commonServerOptions?: { settings?: Record<string, number> }
    http2Servers?: Map<import('node:events').EventEmitter, unknown>
  }
  if (internals.commonServerOptions === undefined) return
  internals.commonServerOptions.settings = {
    ...internals.commonServerOptions.settings,
    initialWindowSize: HTTP2_STREAM_WINDOW_BYTES,
    maxFrameSize: HTTP2_MAX_FRAME_BYTES,
  }
  const bind = server.bindAsync.bind(server)
  server.bindAsync = (port, creds, callback) =>
    bind(port, creds, (err, boundPort) => {
      for (const h2 of internals.http2Servers?.keys() ?? []) {
        h2.on('session', (session: import('node:http2').Http2Session) => {
          session.setLocalWindowSize(HTTP2_CONNECTION_WINDOW_BYTES)
        })
      }
      callback(err, boundPort)
    })
}

/**
 * How often the block store checks itself (readiness): cheap, since an idle store writes one
 * small synced record per check and a busy one none (its own writes prove it).
 */
const STORE_SELF_CHECK_INTERVAL_MS = 2_000

/** The proto sources, for gRPC reflection (a generic client such as grpcurl can list the API). */
export const PROTO_DIR = fileURLToPath(new URL('../../../proto', import.meta.url))

/**
 * Owns the node's resources and their order: open RocksDB, then serve gRPC; on shutdown stop
 * accepting calls, let in-flight writes finish, then close RocksDB.
 */
@Injectable()
export class NodeRuntime implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown {
  readonly metrics: NodeMetrics
  readonly shardMetrics: ShardMetrics
  private store: RocksBlockStore | undefined
  private shards: RocksShardStore | undefined
  private server: Server | undefined
  /** This node's certificate, key and the cluster CA, reloaded on change; undefined without TLS. */
  tls: TlsFiles | undefined
  private readonly health = new HealthImplementation({
    '': 'NOT_SERVING',
    'mycel.v1.BlockService': 'NOT_SERVING',
  })
  private readonly log: Logger
  private selfCheckTimer: NodeJS.Timeout | undefined
  private readonly rootLogger: Logger
  nodeId = ''
  grpcAddress = ''

  constructor(
    @Inject(NODE_CONFIG) private readonly config: NodeEnv,
    @Inject(LOGGER) logger: Logger,
    @Inject(NODE_COMPONENTS) private readonly components: NodeComponent[],
  ) {
    this.rootLogger = logger
    this.log = logger.child({ component: 'node:runtime' })
    this.metrics = new NodeMetrics({
      store: () => this.store,
      ready: () => this.ready,
      dataDir: config.MYCEL_DATA_DIR,
      capacityBytes: config.MYCEL_CAPACITY_BYTES,
    })
    this.shardMetrics = new ShardMetrics(this.metrics.registry, () => this.shards)
  }

  /** Ready when the block store passes its self-check, gRPC serves and membership has joined. */
  get ready(): boolean {
    return this.notReadyReason() === undefined
  }

  /**
   * Why the node is not ready (for /readyz), or undefined when it is: the block store must pass its
   * self-check, gRPC serve, and every component be ready (membership joined).
   */
  notReadyReason(): string | undefined {
    if (this.store === undefined) return 'block store not open'
    if (this.server === undefined) return 'gRPC server not serving'
    const health = this.store.health()
    if (!health.ok) return health.reason ?? 'block store unhealthy'
    for (const c of this.components) {
      const reason = c.notReadyReason?.()
      if (reason !== undefined) return reason
    }
    return undefined
  }

  async onApplicationBootstrap(): Promise<void> {
    const cfg = this.config
    this.nodeId = await loadOrCreateNodeId(cfg.MYCEL_DATA_DIR)
    const rocks = await RocksBlockStore.open({
      path: join(cfg.MYCEL_DATA_DIR, 'blocks'),
      syncWrites: cfg.MYCEL_SYNC_WRITES,
      logger: this.log,
      onBatch: (report) => this.metrics.observeBatch(report),
    })
    this.store = rocks
    this.shards = await RocksShardStore.open(rocks.shared(), {
      logger: this.log,
      onCorrupt: (foundBy) => this.shardMetrics.corrupt.inc({ found_by: foundBy }),
    })
    const tlsFiles = tlsFilesConfig(cfg)
    this.tls = tlsFiles && TlsFiles.load(tlsFiles, this.log.child({ component: 'node:tls' }))
    const publicServices = new Set(ALWAYS_PUBLIC_SERVICES)
    const server = new Server({
      // With TLS, internal services need a cluster certificate (the gate needs TLS to tell).
      interceptors: this.tls ? [requireClusterPeer((service) => publicServices.has(service))] : [],
      ...(this.tls ? { 'grpc.max_connection_age_ms': TLS_MAX_CONNECTION_AGE_MS } : {}),
      'grpc.max_concurrent_streams': cfg.MYCEL_GRPC_MAX_CONCURRENT_STREAMS,
      'grpc.max_receive_message_length': MAX_GRPC_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_GRPC_MESSAGE_BYTES,
      // Peers ping every 10 s at most; answer pings even between calls so idle links stay up.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    })
    widenHttp2Windows(server)
    const statsProviders: Array<() => Partial<GetNodeStatsResponse>> = []
    server.addService(
      BlockServiceService,
      createBlockService({
        store: this.store,
        logger: this.log,
        metrics: this.metrics,
        identity: { nodeId: this.nodeId, zone: cfg.MYCEL_ZONE, capacityBytes: cfg.MYCEL_CAPACITY_BYTES },
        defaultPolicy: replicate(cfg.MYCEL_REPLICATION),
        extraStats: () => Object.assign({}, ...statsProviders.map((p) => p())),
        shards: this.shards,
      }),
    )
    server.addService(
      ShardServiceService,
      createShardService({
        shards: this.shards,
        metrics: this.shardMetrics,
        unary: unaryRunner(this.metrics, this.log.child({ component: 'node:shard-service' })),
      }),
    )
    const ctx: NodeContext = {
      config: cfg,
      nodeId: this.nodeId,
      store: this.store,
      state: this.store,
      metrics: this.metrics,
      tls: this.tls,
      // Components name themselves: logger.child({ component: 'node:<name>' }).
      logger: this.rootLogger,
      addNodeStats: (provider) => statsProviders.push(provider),
      shards: this.shards,
      shardMetrics: this.shardMetrics,
    }
    const protoFiles = ['mycel/v1/block.proto', 'mycel/v1/shard.proto']
    for (const c of this.components) {
      await c.register?.(ctx, {
        addService: (definition, implementation, protoFile, options) => {
          if (options?.public) {
            for (const m of Object.values(definition))
              publicServices.add(m.path.slice(1, m.path.lastIndexOf('/')))
          }
          server.addService(definition, implementation)
          protoFiles.push(protoFile)
        },
      })
    }
    this.health.addToServer(server)
    const pkg = protoLoader.loadSync(
      protoFiles.map((f) => join(PROTO_DIR, f)),
      { includeDirs: [PROTO_DIR] },
    )
    new ReflectionService(pkg).addToServer(server)
    const { host, port } = splitHostPort(cfg.MYCEL_GRPC_LISTEN)
    const bound = await new Promise<number>((resolve, reject) =>
      server.bindAsync(
        `${host.includes(':') ? `[${host}]` : host}:${port}`,
        nodeServerCredentials(this.tls),
        (err, p) => (err ? reject(err) : resolve(p)),
      ),
    )
    this.server = server
    this.grpcAddress = `${host}:${bound}`
    this.health.setStatus('', 'SERVING')
    this.health.setStatus('mycel.v1.BlockService', 'SERVING')
    this.startSelfCheck(this.store)
    for (const c of this.components) await c.start?.({ ...ctx, grpcAddress: this.grpcAddress })
  }

  /**
   * Periodic block-store self-check: readiness turns false when the store fails (disk full, I/O
   * errors) and true again once it has recovered; gRPC health follows. Liveness never depends on
   * it, so a slow disk under load takes a node out of service without restarting it.
   */
  private startSelfCheck(store: BlockStore): void {
    let running = false
    let wasOk = true
    // Readiness reads store.health() live; this follows its transitions for gRPC health and the log.
    const follow = () => {
      const health = store.health()
      if (health.ok === wasOk) return
      wasOk = health.ok
      const state = health.ok ? 'SERVING' : 'NOT_SERVING'
      this.health.setStatus('', state)
      this.health.setStatus('mycel.v1.BlockService', state)
      if (health.ok) this.log.info('block store healthy again: ready')
      else this.log.error({ reason: health.reason }, 'block store unhealthy: not ready')
    }
    this.selfCheckTimer = setInterval(() => {
      follow()
      if (running) return
      running = true
      void store.selfCheck().finally(() => {
        running = false
        follow()
      })
    }, STORE_SELF_CHECK_INTERVAL_MS)
    this.selfCheckTimer.unref()
  }

  async beforeApplicationShutdown(signal?: string): Promise<void> {
    const server = this.server
    if (server === undefined) return
    for (const c of [...this.components].reverse()) {
      try {
        await c.stop?.()
      } catch (err) {
        this.log.warn({ err: String(err) }, 'component failed to stop cleanly')
      }
    }
    clearInterval(this.selfCheckTimer)
    this.log.info({ signal }, 'shutting down: draining gRPC calls')
    this.health.setStatus('', 'NOT_SERVING')
    this.health.setStatus('mycel.v1.BlockService', 'NOT_SERVING')
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        // Long-lived streams from gateways would hold shutdown forever; queued writes still finish.
        server.forceShutdown()
        resolve()
      }, this.config.MYCEL_SHUTDOWN_TIMEOUT_MS)
      server.tryShutdown(() => {
        clearTimeout(timer)
        resolve()
      })
    })
    this.server = undefined
    this.tls?.close()
  }

  async onApplicationShutdown(): Promise<void> {
    // The shard store writes through the block store's writer: it finishes first.
    await this.shards?.close()
    this.shards = undefined
    const store = this.store
    this.store = undefined
    if (store !== undefined) {
      await store.close()
      this.log.info('block store closed')
    }
  }
}
