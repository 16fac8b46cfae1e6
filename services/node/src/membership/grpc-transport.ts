import {
  type ChannelCredentials,
  type ChannelOptions,
  connectivityState,
  credentials,
  Metadata,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceError,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js'
import { deadlineIn, membersFromRecords, memberToRecord } from '@mycel/cluster'
import type { Member } from '@mycel/core'
import {
  type GetMembershipRequest,
  type GetMembershipResponse,
  MembershipServiceClient,
  type MembershipServiceServer,
  type PingReqRequest,
  type PingReqResponse,
  type PingRequest,
  type PingResponse,
  type SyncRequest,
  type SyncResponse,
  type WatchMembershipRequest,
  type WatchMembershipResponse,
} from '@mycel/proto'
import type {
  AckMessage,
  PingMessage,
  PingReqMessage,
  PingReqResult,
  SwimTransport,
  SyncMessage,
} from './swim.js'

const CHANNEL_OPTIONS: ChannelOptions = {
  // A restarted peer must be probed successfully soon after it is back: grpc-js waits out its
  // reconnect backoff (by default growing to 120 s) before it dials again.
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 500,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
}

/** SWIM messages over the MembershipService, one channel per peer address. */
export class GrpcSwimTransport implements SwimTransport {
  private readonly clients = new Map<string, MembershipServiceClient>()

  constructor(
    private readonly creds: ChannelCredentials = credentials.createInsecure(),
    private readonly channelOptions: ChannelOptions = {},
  ) {}

  async ping(address: string, msg: PingMessage, timeoutMs: number): Promise<AckMessage> {
    const req = { fromId: msg.fromId, targetId: msg.targetId, updates: msg.updates.map(memberToRecord) }
    const res = await unary<PingResponse>((cb) =>
      this.client(address).ping(req, waitForReady(), { deadline: deadlineIn(timeoutMs) }, cb),
    )
    return { fromId: res.fromId, updates: membersFromRecords(res.updates) }
  }

  async pingReq(address: string, msg: PingReqMessage, timeoutMs: number): Promise<PingReqResult> {
    const req = { ...msg, updates: msg.updates.map(memberToRecord) }
    const res = await unary<PingReqResponse>((cb) =>
      this.client(address).pingReq(req, waitForReady(), { deadline: deadlineIn(timeoutMs) }, cb),
    )
    return { acked: res.acked, updates: membersFromRecords(res.updates) }
  }

  async sync(address: string, msg: SyncMessage, timeoutMs: number): Promise<SyncMessage> {
    const req = { fromId: msg.fromId, members: msg.members.map(memberToRecord) }
    const res = await unary<SyncResponse>((cb) =>
      this.client(address).sync(req, waitForReady(), { deadline: deadlineIn(timeoutMs) }, cb),
    )
    return { fromId: res.fromId, members: membersFromRecords(res.members) }
  }

  /**
   * A member at `address` restarted (or came back): a channel still failing from its absence is
   * replaced, so the next probe dials at once instead of failing until the backoff ends.
   */
  refresh(address: string): void {
    const c = this.clients.get(address)
    if (
      c !== undefined &&
      c.getChannel().getConnectivityState(false) === connectivityState.TRANSIENT_FAILURE
    ) {
      c.close()
      this.clients.delete(address)
    }
  }

  /** Closes channels to addresses no longer in `keep`. */
  retain(keep: ReadonlySet<string>): void {
    for (const [address, client] of this.clients) {
      if (!keep.has(address)) {
        client.close()
        this.clients.delete(address)
      }
    }
  }

  close(): void {
    this.retain(new Set())
  }

  private client(address: string): MembershipServiceClient {
    let c = this.clients.get(address)
    if (c === undefined) {
      c = new MembershipServiceClient(address, this.creds, { ...CHANNEL_OPTIONS, ...this.channelOptions })
      this.clients.set(address, c)
    }
    return c
  }
}

/**
 * Calls wait for the channel to connect within their deadline instead of failing at once while
 * it is between attempts: a probe then fails only if the peer does not answer in time.
 */
function waitForReady(): Metadata {
  return new Metadata({ waitForReady: true })
}

function unary<Res>(start: (cb: (err: ServiceError | null, res: Res) => void) => void): Promise<Res> {
  return new Promise((resolve, reject) => start((err, res) => (err ? reject(err) : resolve(res))))
}

/** What the MembershipService handlers need from the node's membership. */
export interface MembershipServiceHandlers {
  ping(msg: PingMessage): AckMessage
  pingReq(msg: PingReqMessage): Promise<PingReqResult>
  sync(msg: SyncMessage): SyncMessage
  /** This node's id and view, or undefined before the protocol runs. */
  view(): { nodeId: string; members: readonly Member[] } | undefined
  /** Why a watch cannot start now (still joining), if so. */
  watchRefusal(): string | undefined
  watch(call: ServerWritableStream<WatchMembershipRequest, WatchMembershipResponse>): void
  heartbeatMs: number
}

function unavailable(details: string) {
  return { code: status.UNAVAILABLE, details, metadata: new Metadata(), name: 'Error', message: details }
}

/** The server side of MembershipService. */
export function createMembershipService(h: MembershipServiceHandlers): MembershipServiceServer {
  const notStarted = unavailable('membership is not running yet')
  return {
    ping(call: ServerUnaryCall<PingRequest, PingResponse>, callback: sendUnaryData<PingResponse>) {
      if (h.view() === undefined) return callback(notStarted)
      const ack = h.ping({
        fromId: call.request.fromId,
        targetId: call.request.targetId,
        updates: membersFromRecords(call.request.updates),
      })
      callback(null, { fromId: ack.fromId, updates: ack.updates.map(memberToRecord) })
    },
    pingReq(
      call: ServerUnaryCall<PingReqRequest, PingReqResponse>,
      callback: sendUnaryData<PingReqResponse>,
    ) {
      if (h.view() === undefined) return callback(notStarted)
      const r = call.request
      h.pingReq({
        fromId: r.fromId,
        targetId: r.targetId,
        targetAddress: r.targetAddress,
        timeoutMs: r.timeoutMs,
        updates: membersFromRecords(r.updates),
      }).then(
        (res) => callback(null, { acked: res.acked, updates: res.updates.map(memberToRecord) }),
        (err: unknown) => callback(unavailable(String(err))),
      )
    },
    sync(call: ServerUnaryCall<SyncRequest, SyncResponse>, callback: sendUnaryData<SyncResponse>) {
      if (h.view() === undefined) return callback(notStarted)
      const res = h.sync({ fromId: call.request.fromId, members: membersFromRecords(call.request.members) })
      callback(null, { fromId: res.fromId, members: res.members.map(memberToRecord) })
    },
    getMembership(
      _call: ServerUnaryCall<GetMembershipRequest, GetMembershipResponse>,
      callback: sendUnaryData<GetMembershipResponse>,
    ) {
      const v = h.view()
      if (v === undefined) return callback(notStarted)
      callback(null, { nodeId: v.nodeId, members: v.members.map(memberToRecord), heartbeatMs: h.heartbeatMs })
    },
    watchMembership(call: ServerWritableStream<WatchMembershipRequest, WatchMembershipResponse>) {
      const refusal = h.view() === undefined ? 'membership is not running yet' : h.watchRefusal()
      if (refusal !== undefined) {
        call.emit('error', unavailable(refusal))
        return
      }
      h.watch(call)
    },
  }
}
