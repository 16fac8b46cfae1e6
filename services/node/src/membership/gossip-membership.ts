import { hostname } from 'node:os'
import type { ServerWritableStream } from '@grpc/grpc-js'
import { clusterClientOptions, memberToRecord, seedResolver } from '@mycel/cluster'
import {
  isPlaceable,
  type Logger,
  type Member,
  MembershipEvents,
  type MembershipView,
  type NodeEnv,
  splitHostPort,
} from '@mycel/core'
import {
  MembershipServiceService,
  type WatchMembershipRequest,
  type WatchMembershipResponse,
} from '@mycel/proto'
import { nextIncarnation } from '../identity.js'
import type { GrpcRegistrar, NodeComponent, NodeContext } from '../node-component.js'
import { createMembershipService, GrpcSwimTransport } from './grpc-transport.js'
import { membershipMetrics } from './metrics.js'
import { Swim, type SwimObserver } from './swim.js'

/**
 * WatchMembership repeats the whole view at least this often, so a watcher (a gateway) notices
 * a silent, cut-off node within a few heartbeats and follows another one.
 */
export const WATCH_HEARTBEAT_MS = 2_000

/** Changes are pushed to watchers at most this often (a burst of gossip becomes one message). */
const WATCH_COALESCE_MS = 50

type WatchCall = ServerWritableStream<WatchMembershipRequest, WatchMembershipResponse>

/**
 * The node's membership: SWIM over gRPC (swim.ts is the protocol, grpc-transport.ts the wire), as
 * a NodeComponent provided under the MEMBERSHIP token. The view is empty until the runtime starts
 * the component (the node id and the bound address are known only then). On shutdown it tells
 * the other members that this node leaves, before gRPC drains.
 */
export class GossipMembership implements NodeComponent, MembershipView {
  private swim: Swim | undefined
  /** Plaintext until register() knows the node's TLS files. */
  private transport = new GrpcSwimTransport()
  /** Listeners subscribe before the protocol exists (it starts with the runtime). */
  readonly events = new MembershipEvents()
  private readonly watchers = new Map<WatchCall, { blocked: boolean }>()
  private observer: SwimObserver = {}
  private log: Logger | undefined
  private heartbeat: NodeJS.Timeout | undefined
  private pushTimer: NodeJS.Timeout | undefined
  private stopping = false

  constructor(private readonly config: NodeEnv) {}

  get self(): Member | undefined {
    return this.swim?.self
  }

  /** True once this node finished joining (it synced with a seed, or it has none). */
  get joined(): boolean {
    return this.swim?.joined ?? false
  }

  members(): readonly Member[] {
    return this.swim?.members() ?? []
  }

  placementMembers(): readonly Member[] {
    return this.members().filter(isPlaceable)
  }

  onChange(listener: (members: readonly Member[]) => void): () => void {
    return this.events.onChange(listener)
  }

  /**
   * Called for every accepted change of one member's record, with the record it replaced (e.g.
   * alive → dead starts repair).
   */
  onUpdate(listener: (member: Member, previous: Member | undefined) => void): () => void {
    return this.events.onUpdate(listener)
  }

  notReadyReason(): string | undefined {
    if (this.swim === undefined) return 'membership not started'
    return this.swim.joined ? undefined : 'membership: joining, no seed has answered yet'
  }

  register(ctx: NodeContext, grpc: GrpcRegistrar): void {
    this.log = ctx.logger.child({ component: 'node:membership' })
    this.observer = membershipMetrics(ctx.metrics.registry, () => this.members())
    // Peers are dialled with the node's certificate when the cluster uses mutual TLS.
    const tls = clusterClientOptions(ctx.tls, this.config.MYCEL_TLS_SERVER_NAME)
    this.transport = new GrpcSwimTransport(tls.credentials, tls.channelOptions)
    grpc.addService(
      MembershipServiceService,
      createMembershipService({
        ping: (msg) => this.running().handlePing(msg),
        pingReq: (msg) => this.running().handlePingReq(msg),
        sync: (msg) => this.running().handleSync(msg),
        view: () =>
          this.swim === undefined ? undefined : { nodeId: ctx.nodeId, members: this.swim.members() },
        watchRefusal: () =>
          this.stopping
            ? 'this node is shutting down'
            : this.joined
              ? undefined
              : 'this node is still joining the cluster',
        watch: (call) => this.addWatcher(call),
        heartbeatMs: WATCH_HEARTBEAT_MS,
      }),
      'mycel/v1/membership.proto',
    )
  }

  async start(ctx: NodeContext & { grpcAddress: string }): Promise<void> {
    const cfg = this.config
    const log = this.log ?? ctx.logger
    const { host, port } = splitHostPort(ctx.grpcAddress)
    let address = cfg.MYCEL_ADVERTISE_ADDRESS ?? ctx.grpcAddress
    if (cfg.MYCEL_ADVERTISE_ADDRESS === undefined && (host === '0.0.0.0' || host === '::')) {
      // A wildcard is no address to dial; the hostname is the best guess (set the variable).
      address = `${hostname()}:${port}`
      log.warn({ advertise: address }, 'MYCEL_ADVERTISE_ADDRESS is not set: advertising the hostname')
    }
    const swim = new Swim({
      self: { id: ctx.nodeId, address, zone: cfg.MYCEL_ZONE, host: cfg.MYCEL_HOST, weight: cfg.MYCEL_WEIGHT },
      incarnation: await nextIncarnation(cfg.MYCEL_DATA_DIR),
      transport: this.transport,
      seeds: seedResolver({
        peers: cfg.MYCEL_PEERS,
        dns: cfg.MYCEL_SEED_DNS,
        defaultPort: port,
        logger: log,
      }),
      config: {
        probeIntervalMs: cfg.MYCEL_PROBE_INTERVAL_MS,
        probeTimeoutMs: cfg.MYCEL_PROBE_TIMEOUT_MS,
        indirectProbes: cfg.MYCEL_INDIRECT_PROBES,
        deadAfterMs: cfg.MYCEL_DEAD_AFTER_MS,
        syncIntervalMs: cfg.MYCEL_SYNC_INTERVAL_MS,
        syncTimeoutMs: Math.max(2_000, 4 * cfg.MYCEL_PROBE_TIMEOUT_MS),
        joinRetryMs: Math.min(1_000, cfg.MYCEL_PROBE_INTERVAL_MS),
        joinTimeoutMs: cfg.MYCEL_JOIN_TIMEOUT_MS,
      },
      observer: this.observer,
      logger: log,
      events: this.events,
    })
    this.events.onUpdate((m, previous) => {
      if (
        previous !== undefined &&
        m.incarnation > previous.incarnation &&
        m.state !== 'left' &&
        m.state !== 'dead'
      ) {
        this.transport.refresh(m.address)
      }
    })
    swim.onChange((members) => {
      // Channels to addresses no member has any more are closed (seeds are redialled on demand).
      this.transport.retain(new Set(members.map((m) => m.address)))
      this.schedulePush()
    })
    this.swim = swim
    swim.start()
    this.heartbeat = setInterval(() => this.pushToWatchers(), WATCH_HEARTBEAT_MS).unref()
    log.info(
      {
        nodeId: ctx.nodeId,
        advertise: address,
        incarnation: swim.self.incarnation,
        seeds: cfg.MYCEL_PEERS,
        seedDns: cfg.MYCEL_SEED_DNS,
      },
      'membership started',
    )
  }

  /** Announces `left` to the members (best effort, within the probe timeout), then ends watches. */
  async stop(): Promise<void> {
    // A watch opened now would hold the gRPC drain open until it is forced.
    this.stopping = true
    clearInterval(this.heartbeat)
    clearTimeout(this.pushTimer)
    if (this.swim !== undefined) await this.swim.leave()
    // Watchers get the view with this node left, then their stream ends: they follow another node.
    this.pushToWatchers()
    for (const call of this.watchers.keys()) call.end()
    this.watchers.clear()
    this.transport.close()
  }

  private running(): Swim {
    if (this.swim === undefined) throw new Error('membership is not running yet')
    return this.swim
  }

  private addWatcher(call: WatchCall): void {
    const state = { blocked: false }
    this.watchers.set(call, state)
    const remove = () => this.watchers.delete(call)
    call.on('cancelled', remove)
    call.on('close', remove)
    call.on('error', remove)
    call.on('drain', () => {
      state.blocked = false
    })
    this.write(call, state)
  }

  private schedulePush(): void {
    if (this.pushTimer !== undefined || this.watchers.size === 0) return
    this.pushTimer = setTimeout(() => {
      this.pushTimer = undefined
      this.pushToWatchers()
    }, WATCH_COALESCE_MS)
  }

  private pushToWatchers(): void {
    for (const [call, state] of this.watchers) this.write(call, state)
  }

  /** Writes the whole view, unless the watcher has not read the previous one (then it is skipped). */
  private write(call: WatchCall, state: { blocked: boolean }): void {
    if (state.blocked || this.swim === undefined || call.cancelled || call.writableEnded) return
    const ok = call.write({
      nodeId: this.swim.self.id,
      members: this.swim.members().map(memberToRecord),
      heartbeatMs: WATCH_HEARTBEAT_MS,
    })
    if (!ok) state.blocked = true
  }
}
