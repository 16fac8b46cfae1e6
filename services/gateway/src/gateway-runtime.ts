import type { Server } from 'node:http'
import { Metadata } from '@grpc/grpc-js'
import {
  ClusterBlockstore,
  clusterClientOptions,
  deadlineIn,
  NodeClients,
  type NodeHandle,
} from '@mycel/cluster'
import {
  type GatewayEnv,
  type Logger,
  StaticMembership,
  TlsFiles,
  TokenAuthenticator,
  tlsFilesConfig,
} from '@mycel/core'
import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common'
import { RequestGuard } from './http/guard.js'
import { GatewayMetrics } from './metrics.js'

export const GATEWAY_CONFIG = Symbol('GATEWAY_CONFIG')
export const LOGGER = Symbol('LOGGER')

export interface NodeStatus {
  address: string
  state: 'up' | 'down'
  nodeId?: string
  zone?: string
  blocks?: number
  blockBytes?: number
  capacityBytes?: number
  version?: string
  error?: string
  checkedAt: string
}

/** How often the gateway checks that each node answers; readiness and status use the result. */
const PROBE_INTERVAL_MS = 2_000
const PROBE_TIMEOUT_MS = 1_500

/** How long shutdown lets requests in flight finish before their connections are cut. */
const DRAIN_TIMEOUT_MS = 15_000

/** The gateway's shared state: node clients, the cluster blockstore, metrics and node probes. */
@Injectable()
export class GatewayRuntime implements OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown {
  readonly metrics = new GatewayMetrics()
  readonly clients: NodeClients
  readonly cluster: ClusterBlockstore
  readonly log: Logger
  /** The gateway's client certificate and the cluster CA (mutual TLS to the nodes), if configured. */
  readonly tls: TlsFiles | undefined
  /** Bearer tokens (MYCEL_API_TOKENS_FILE, reloaded on change); undefined when MYCEL_AUTH=off. */
  readonly tokens: TokenAuthenticator | undefined
  /** Authentication and limits in front of every route. */
  readonly guard: RequestGuard
  private readonly statuses = new Map<string, NodeStatus>()
  private probeTimer: NodeJS.Timeout | undefined
  private readonly servers: Server[] = []

  constructor(
    @Inject(GATEWAY_CONFIG) readonly config: GatewayEnv,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.log = logger
    const tlsFiles = tlsFilesConfig(config)
    this.tls = tlsFiles && TlsFiles.load(tlsFiles, logger.child({ component: 'gateway:tls' }))
    this.tokens =
      config.MYCEL_AUTH === 'required' && config.MYCEL_API_TOKENS_FILE !== undefined
        ? TokenAuthenticator.fromFile(
            config.MYCEL_API_TOKENS_FILE,
            logger.child({ component: 'gateway:auth' }),
          )
        : undefined
    this.guard = new RequestGuard({ config, tokens: this.tokens, metrics: this.metrics, log: logger })
    this.clients = new NodeClients(
      StaticMembership.fromAddresses(config.MYCEL_PEERS),
      clusterClientOptions(this.tls, config.MYCEL_TLS_SERVER_NAME),
    )
    this.cluster = new ClusterBlockstore(
      this.clients,
      {
        replication: config.MYCEL_REPLICATION,
        writeQuorum: config.MYCEL_WRITE_QUORUM,
        rpcTimeoutMs: config.MYCEL_RPC_TIMEOUT_MS,
        maxInflightPerNode: 32,
      },
      logger,
      this.metrics,
    )
  }

  async onModuleInit(): Promise<void> {
    await this.probeAll()
    this.probeTimer = setInterval(() => void this.probeAll(), PROBE_INTERVAL_MS)
    this.probeTimer.unref()
  }

  /** HTTP servers to drain on shutdown. */
  registerServer(server: Server): void {
    this.servers.push(server)
  }

  beforeApplicationShutdown(): void {
    for (const s of this.servers) {
      s.closeIdleConnections()
      // A stuck or very long transfer must not hold the process past its termination grace.
      setTimeout(() => s.closeAllConnections(), DRAIN_TIMEOUT_MS).unref()
    }
  }

  onApplicationShutdown(): void {
    clearInterval(this.probeTimer)
    this.clients.close()
    this.tls?.close()
    this.tokens?.close()
    this.guard.close()
  }

  /** Node states from the latest probe, in configured order. */
  nodeStatuses(): NodeStatus[] {
    return this.clients.nodes.map(
      (n) =>
        this.statuses.get(n.address) ?? {
          address: n.address,
          state: 'down',
          checkedAt: new Date(0).toISOString(),
        },
    )
  }

  /** Ready when enough nodes answer to acknowledge a write. */
  get ready(): boolean {
    const up = this.nodeStatuses().filter((s) => s.state === 'up').length
    return up >= Math.min(this.config.MYCEL_WRITE_QUORUM, this.clients.nodes.length)
  }

  async probeAll(): Promise<void> {
    await Promise.all(this.clients.nodes.map((n) => this.probe(n)))
  }

  private probe(node: NodeHandle): Promise<void> {
    return new Promise((resolve) => {
      node.client.getNodeStats({}, new Metadata(), { deadline: deadlineIn(PROBE_TIMEOUT_MS) }, (err, res) => {
        const checkedAt = new Date().toISOString()
        this.statuses.set(
          node.address,
          err
            ? { address: node.address, state: 'down', error: err.details || err.message, checkedAt }
            : {
                address: node.address,
                state: 'up',
                nodeId: res.nodeId,
                zone: res.zone,
                blocks: Number(res.blocks),
                blockBytes: Number(res.blockBytes),
                capacityBytes: Number(res.capacityBytes),
                version: res.version,
                checkedAt,
              },
        )
        resolve()
      })
    })
  }
}
