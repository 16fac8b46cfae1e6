import type { Server } from 'node:http'
import { Metadata } from '@grpc/grpc-js'
import {
  ClusterBlockstore,
  clusterClientOptions,
  deadlineIn,
  NodeClients,
  RemoteMembership,
  seedResolver,
} from '@mycel/cluster'
import {
  type GatewayEnv,
  isRoutable,
  type Logger,
  type Member,
  TlsFiles,
  TokenAuthenticator,
  tlsFilesConfig,
} from '@mycel/core'
import { untraced } from '@mycel/telemetry'
import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common'
import { RequestGuard } from './http/guard.js'
import { GatewayMetrics } from './metrics.js'
import {
  type NodeRepairStatus,
  type NodeScrubStatus,
  nodeRepairStatus,
  nodeScrubStatus,
} from './repair-status.js'

export const GATEWAY_CONFIG = Symbol('GATEWAY_CONFIG')
export const LOGGER = Symbol('LOGGER')

/** A member's latest stats, from GetNodeStats. */
interface NodeStats {
  /** The latest stats probe was answered. */
  reachable: boolean
  blocks?: number
  blockBytes?: number
  capacityBytes?: number
  version?: string
  /** Erasure-coded shards held, and their bytes. */
  shards?: number
  shardBytes?: number
  /** Background repair and scrubbing on the node (absent from nodes that do not report them). */
  repair?: NodeRepairStatus
  scrub?: NodeScrubStatus
  error?: string
  checkedAt?: string
}

/** A member as the status endpoint shows it: its membership record and its latest stats. */
export type NodeStatus = Member & NodeStats

/** Storage nodes' gRPC port when MYCEL_SEED_DNS names none (the node's default listener). */
export const DEFAULT_NODE_GRPC_PORT = 7070

/** How long startup waits for a first membership view before the gateway serves anyway. */
const FIRST_VIEW_WAIT_MS = 5_000

/** How often the gateway asks each routable member for its stats (status). */
const PROBE_INTERVAL_MS = 2_000
const PROBE_TIMEOUT_MS = 1_500

/** How long shutdown lets requests in flight finish before their connections are cut. */
const DRAIN_TIMEOUT_MS = 15_000

/**
 * The gateway's shared state: the membership it follows from the nodes, node clients, the
 * cluster blockstore, metrics, and per-node stats probes for status.
 */
@Injectable()
export class GatewayRuntime implements OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown {
  readonly metrics = new GatewayMetrics({
    membership: () => this.membership,
    nodesUp: () => this.nodeStatuses().filter((s) => s.reachable).length,
    ready: () => this.ready,
  })
  readonly membership: RemoteMembership
  readonly clients: NodeClients
  readonly cluster: ClusterBlockstore
  readonly log: Logger
  /** The gateway's client certificate and the cluster CA (mutual TLS to the nodes), if configured. */
  readonly tls: TlsFiles | undefined
  /** Bearer tokens (MYCEL_API_TOKENS_FILE, reloaded on change); undefined when MYCEL_AUTH=off. */
  readonly tokens: TokenAuthenticator | undefined
  /** Authentication and limits in front of every route. */
  readonly guard: RequestGuard
  private readonly stats = new Map<string, NodeStats>()
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
    // Membership and block traffic go to the nodes' internal services: the gateway's certificate.
    const tls = clusterClientOptions(this.tls, config.MYCEL_TLS_SERVER_NAME)
    this.membership = new RemoteMembership({
      seeds: seedResolver({
        peers: config.MYCEL_PEERS,
        dns: config.MYCEL_SEED_DNS,
        defaultPort: DEFAULT_NODE_GRPC_PORT,
        logger,
      }),
      ...tls,
      logger,
    })
    this.clients = new NodeClients(this.membership, tls)
    this.cluster = new ClusterBlockstore(
      this.clients,
      {
        replication: config.MYCEL_REPLICATION,
        writeQuorum: config.MYCEL_WRITE_QUORUM,
        rpcTimeoutMs: config.MYCEL_RPC_TIMEOUT_MS,
        maxInflightPerNode: 32,
        defaultDurability: config.MYCEL_DEFAULT_DURABILITY,
        ecMinBlockBytes: config.MYCEL_EC_MIN_BLOCK_BYTES,
        ecHedgeMs: config.MYCEL_EC_HEDGE_MS,
      },
      logger,
      this.metrics,
    )
  }

  async onModuleInit(): Promise<void> {
    this.membership.start()
    if (!(await this.membership.waitUntilKnown(FIRST_VIEW_WAIT_MS))) {
      this.log.warn(
        { seeds: this.config.MYCEL_PEERS, seedDns: this.config.MYCEL_SEED_DNS },
        'no storage node answered yet: serving, not ready until one does',
      )
    }
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
    this.membership.close()
    this.clients.close()
    this.tls?.close()
    this.tokens?.close()
    this.guard.close()
  }

  /** Every member the gateway knows, with its latest stats. */
  nodeStatuses(): NodeStatus[] {
    return this.membership.members().map((m) => {
      const s = this.stats.get(m.id)
      const probed = isRoutable(m) || m.state === 'joining'
      const { id, address, zone, host, weight, state, incarnation } = m
      // Stats of a member no longer probed (left, dead) are its last known ones.
      return {
        id,
        address,
        zone,
        host,
        weight,
        state,
        incarnation,
        ...s,
        reachable: probed && s?.reachable === true,
      }
    })
  }

  /** Members requests may go to now. */
  routableCount(): number {
    return this.membership.members().filter(isRoutable).length
  }

  /** Ready when the gateway knows the membership and enough routable members to acknowledge a write. */
  get ready(): boolean {
    return this.membership.known && this.routableCount() >= this.config.MYCEL_WRITE_QUORUM
  }

  async probeAll(): Promise<void> {
    const members = this.membership.members()
    for (const id of this.stats.keys()) if (!members.some((m) => m.id === id)) this.stats.delete(id)
    // Probes run every 2 s: untraced, or each would be a trace of its own.
    await untraced(() =>
      Promise.all(members.filter((m) => isRoutable(m) || m.state === 'joining').map((m) => this.probe(m))),
    )
  }

  private probe(member: Member): Promise<void> {
    return new Promise((resolve) => {
      this.clients
        .clientFor(member.address)
        .getNodeStats({}, new Metadata(), { deadline: deadlineIn(PROBE_TIMEOUT_MS) }, (err, res) => {
          const checkedAt = new Date().toISOString()
          if (err || res.nodeId !== member.id) {
            this.stats.set(member.id, {
              reachable: false,
              error: err ? err.details || err.message : `${member.address} answers as ${res.nodeId}`,
              checkedAt,
            })
          } else {
            this.stats.set(member.id, {
              reachable: true,
              blocks: Number(res.blocks),
              blockBytes: Number(res.blockBytes),
              capacityBytes: Number(res.capacityBytes),
              version: res.version,
              shards: Number(res.shards),
              shardBytes: Number(res.shardBytes),
              repair: nodeRepairStatus(res.repair),
              scrub: nodeScrubStatus(res.scrub),
              checkedAt,
            })
          }
          resolve()
        })
    })
  }
}
