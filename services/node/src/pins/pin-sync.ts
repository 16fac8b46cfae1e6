import {
  type ChannelCredentials,
  type ChannelOptions,
  credentials,
  Metadata,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
} from '@grpc/grpc-js'
import { deadlineIn } from '@mycel/cluster'
import {
  isRoutable,
  type Logger,
  MAX_GRPC_MESSAGE_BYTES,
  type Member,
  type MembershipView,
  type QuorumFailure,
  QuorumNotReachedError,
} from '@mycel/core'
import {
  type ApplyPinsRequest,
  type ApplyPinsResponse,
  type PinRecord,
  PinSyncServiceClient,
  type PinSyncServiceServer,
  type SyncPinsRequest,
  type SyncPinsResponse,
} from '@mycel/proto'
import type { NodeMetrics } from '../admin/metrics.js'
import { answer, stream } from '../api/grpc-calls.js'
import type { PinStore } from './pin-store.js'

/** Records per ApplyPins request and per SyncPins response (each well under the 4 MiB limit). */
const RECORDS_PER_MESSAGE = 1_000

/** The internal PinSyncService: merge records; compare digests and send the differing buckets. */
export function createPinSyncService(
  store: PinStore,
  deps: { log: Logger; metrics: NodeMetrics },
): PinSyncServiceServer {
  return {
    applyPins(
      call: ServerUnaryCall<ApplyPinsRequest, ApplyPinsResponse>,
      callback: sendUnaryData<ApplyPinsResponse>,
    ) {
      answer('PinSync.ApplyPins', call, callback, deps, async () => ({
        applied: (await store.apply(call.request.records)).length,
      }))
    },
    syncPins(call: ServerWritableStream<SyncPinsRequest, SyncPinsResponse>) {
      stream('PinSync.SyncPins', call, deps, async (send) => {
        const only = call.request.buckets.length > 0 ? new Set(call.request.buckets) : undefined
        const differing = store.set.differingBuckets(call.request.bucketDigests, only)
        await send({ differingBuckets: differing, records: [] })
        const records = store.set.recordsIn(new Set(differing))
        for (let i = 0; i < records.length; i += RECORDS_PER_MESSAGE) {
          await send({ differingBuckets: [], records: records.slice(i, i + RECORDS_PER_MESSAGE) })
        }
      })
    },
  }
}

export interface PinReplicatorConfig {
  store: PinStore
  membership: MembershipView
  /** This node's address as members know it (to tell itself apart in a static membership). */
  selfAddress: string
  /** Plaintext when unset. */
  credentials?: ChannelCredentials | undefined
  /** Extra channel options (the TLS server name override of clusterClientOptions). */
  channelOptions?: ChannelOptions
  rpcTimeoutMs: number
  /** Anti-entropy period (a random peer each round). */
  syncIntervalMs: number
  logger: Logger
}

/**
 * Keeps the pin set the same on every node without a master. Writes go to every reachable
 * member and count once a majority of the members (placement members: alive, suspect, left)
 * hold them; reads first reconcile with a majority, so a read sees every acknowledged write
 * (majorities intersect). Anti-entropy with a random peer each round repairs the rest: a node
 * that was down, or missed a write, converges within a few rounds.
 */
export class PinReplicator {
  private readonly clients = new Map<string, PinSyncServiceClient>()
  private readonly log: Logger
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private syncing: Promise<unknown> = Promise.resolve()

  constructor(private readonly cfg: PinReplicatorConfig) {
    this.log = cfg.logger.child({ component: 'node:pins' })
  }

  /** The members counted for quorums and the majority needed. */
  quorum(): { members: readonly Member[]; needed: number } {
    const members = this.cfg.membership.placementMembers()
    return { members, needed: Math.floor(Math.max(members.length, 1) / 2) + 1 }
  }

  isSelf(m: Member): boolean {
    const self = this.cfg.membership.self
    return (self !== undefined && m.id === self.id) || m.address === this.cfg.selfAddress
  }

  /**
   * Writes records here and to every reachable member at once; resolves once a majority of the
   * members holds them (this node's own durable write counts as one).
   */
  async write(records: PinRecord[], signal?: AbortSignal): Promise<void> {
    const { members, needed } = this.quorum()
    const failures: QuorumFailure[] = []
    for (const m of members) {
      if (!isRoutable(m)) failures.push({ node: m.address, error: `member is ${m.state}` })
    }
    const selfCounts = members.some((m) => this.isSelf(m))
    const local = this.cfg.store.apply(records).then(() => (selfCounts ? 1 : 0))
    const peers = members.filter((m) => isRoutable(m) && !this.isSelf(m))
    const attempts = [
      local,
      ...peers.map((p) =>
        this.apply(p, records, signal).then(
          () => 1,
          (err: unknown) => {
            failures.push({ node: p.address, error: errorText(err) })
            return 0
          },
        ),
      ),
    ]
    // The local write must succeed (its failure is this node's, not a quorum question).
    local.catch(() => undefined)
    await new Promise<void>((resolve, reject) => {
      let acked = 0
      let pending = attempts.length
      let done = false
      for (const attempt of attempts) {
        attempt.then(
          (n) => {
            acked += n
            pending--
            if (done) return
            if (acked >= needed) {
              done = true
              resolve()
            } else if (pending === 0) {
              done = true
              reject(new QuorumNotReachedError(needed, acked, failures, 'pin'))
            }
          },
          (err: unknown) => {
            if (done) return
            done = true
            reject(err)
          },
        )
      }
    })
    // A quorum without the local write (a peer-only majority) still waits for it: reads here must
    // see what this node acknowledged.
    await local
  }

  /**
   * Reconciles with a majority of the members (this node counts as one), so that what this node
   * answers next includes every write a majority acknowledged. QuorumNotReachedError otherwise.
   */
  async readQuorum(signal?: AbortSignal): Promise<void> {
    const { members, needed } = this.quorum()
    let ok = members.some((m) => this.isSelf(m)) ? 1 : 0
    const failures: QuorumFailure[] = []
    const peers = members.filter((m) => isRoutable(m) && !this.isSelf(m))
    await Promise.all(
      peers.map((p) =>
        this.syncWith(p, signal).then(
          () => {
            ok++
          },
          (err: unknown) => {
            failures.push({ node: p.address, error: errorText(err) })
          },
        ),
      ),
    )
    if (ok < needed) throw new QuorumNotReachedError(needed, ok, failures, 'pin read')
  }

  /** One anti-entropy exchange: pull the peer's records of differing buckets, push ours. */
  async syncWith(peer: Member, signal?: AbortSignal): Promise<{ pulled: number; pushed: number }> {
    const store = this.cfg.store
    let differing: number[] | undefined
    let pulled = 0
    const call = this.client(peer.address).syncPins(
      { bucketDigests: store.set.bucketDigests(), buckets: [] },
      new Metadata(),
      { deadline: deadlineIn(this.cfg.rpcTimeoutMs * 3) },
    )
    const onAbort = () => call.cancel()
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      for await (const msg of call as AsyncIterable<SyncPinsResponse>) {
        differing ??= msg.differingBuckets
        if (msg.records.length > 0) pulled += (await store.apply(msg.records)).length
      }
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
    const ours = differing === undefined ? [] : store.set.recordsIn(new Set(differing))
    for (let i = 0; i < ours.length; i += RECORDS_PER_MESSAGE) {
      await this.apply(peer, ours.slice(i, i + RECORDS_PER_MESSAGE), signal)
    }
    if (pulled > 0 || ours.length > 0)
      this.log.debug({ peer: peer.address, pulled, pushed: ours.length }, 'pin anti-entropy exchange')
    return { pulled, pushed: ours.length }
  }

  /** Starts anti-entropy: a first round soon (a restarted node catches up), then periodically. */
  start(): void {
    this.schedule(Math.min(1_000, this.cfg.syncIntervalMs))
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    await this.syncing
    for (const c of this.clients.values()) c.close()
    this.clients.clear()
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return
    this.timer = setTimeout(() => {
      this.syncing = this.round().finally(() => {
        // ±20 % jitter, so nodes do not all sync at the same moment.
        this.schedule(this.cfg.syncIntervalMs * (0.8 + Math.random() * 0.4))
      })
    }, delayMs)
    this.timer.unref()
  }

  private async round(): Promise<void> {
    const peers = this.cfg.membership.members().filter((m) => isRoutable(m) && !this.isSelf(m))
    const peer = peers[Math.floor(Math.random() * peers.length)]
    if (peer === undefined) return
    try {
      await this.syncWith(peer)
    } catch (err) {
      this.log.debug({ peer: peer.address, err: errorText(err) }, 'pin anti-entropy round failed')
    }
  }

  private apply(peer: Member, records: PinRecord[], signal?: AbortSignal): Promise<number> {
    return new Promise((resolve, reject) => {
      const call = this.client(peer.address).applyPins(
        { records },
        new Metadata(),
        { deadline: deadlineIn(this.cfg.rpcTimeoutMs) },
        (err, res) => {
          signal?.removeEventListener('abort', onAbort)
          if (err) reject(err)
          else resolve(res.applied)
        },
      )
      const onAbort = () => call.cancel()
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  private client(address: string): PinSyncServiceClient {
    let c = this.clients.get(address)
    if (c === undefined) {
      c = new PinSyncServiceClient(address, this.cfg.credentials ?? credentials.createInsecure(), {
        'grpc.max_receive_message_length': MAX_GRPC_MESSAGE_BYTES,
        'grpc.max_send_message_length': MAX_GRPC_MESSAGE_BYTES,
        'grpc.initial_reconnect_backoff_ms': 250,
        'grpc.max_reconnect_backoff_ms': 5_000,
        ...this.cfg.channelOptions,
      })
      this.clients.set(address, c)
    }
    return c
  }
}

function errorText(err: unknown): string {
  const e = err as { details?: string; message?: string }
  return e?.details || e?.message || String(err)
}
