import {
  type ChannelCredentials,
  type ChannelOptions,
  connectivityState,
  credentials,
  makeGenericClientConstructor,
  type ServiceError,
} from '@grpc/grpc-js'
import {
  MAX_GRPC_MESSAGE_BYTES,
  type Member,
  type MemberMarks,
  type MembershipView,
  memberMarks,
  membersBack,
} from '@mycel/core'
import {
  type BlockServiceClient,
  BlockServiceService,
  PutBlocksRequest,
  ShardServiceClient,
} from '@mycel/proto'

/**
 * The BlockService client, except that PutBlocks also accepts a request already encoded with
 * `encodePutBlocksRequest`: an upload encodes each block once and sends the same bytes to all R
 * nodes, instead of R encodes of three copies each.
 */
const BlockServiceClientWithPreEncodedPuts = makeGenericClientConstructor(
  {
    ...BlockServiceService,
    putBlocks: {
      ...BlockServiceService.putBlocks,
      requestSerialize: (value: PutBlocksRequest | Buffer): Buffer =>
        Buffer.isBuffer(value) ? value : Buffer.from(PutBlocksRequest.encode(value).finish()),
    },
  },
  'mycel.v1.BlockService',
) as unknown as new (
  address: string,
  creds: ChannelCredentials,
  options: ChannelOptions,
) => BlockServiceClient

/**
 * Protobuf encoding of PutBlocksRequest {seq = 1, cid = 2, data = 3, durability = 4} with a single
 * copy of the block; `durability` is an encoded Durability message (`encodeDurability`). Written
 * by hand because it is the upload's hot path: the generated encoder copies the data three
 * times. A unit test checks it against the generated encoder and decoder.
 */
export function encodePutBlocksRequest(
  seq: bigint,
  cid: Uint8Array,
  data: Uint8Array,
  durability?: Uint8Array,
): Buffer {
  const head: number[] = []
  const varint = (out: number[], n: bigint) => {
    let v = n
    while (v >= 0x80n) {
      out.push(Number(v & 0x7fn) | 0x80)
      v >>= 7n
    }
    out.push(Number(v))
  }
  if (seq !== 0n) {
    head.push(0x08) // field 1, varint
    varint(head, seq)
  }
  if (cid.byteLength > 0) {
    head.push(0x12) // field 2, length-delimited
    varint(head, BigInt(cid.byteLength))
    for (const b of cid) head.push(b)
  }
  if (data.byteLength > 0) {
    head.push(0x1a) // field 3, length-delimited
    varint(head, BigInt(data.byteLength))
  }
  const tail: number[] = []
  if (durability !== undefined) {
    tail.push(0x22) // field 4, length-delimited (a message, present even when empty)
    varint(tail, BigInt(durability.byteLength))
    for (const b of durability) tail.push(b)
  }
  const out = Buffer.allocUnsafe(head.length + data.byteLength + tail.length)
  out.set(head, 0)
  out.set(data, head.length)
  out.set(tail, head.length + data.byteLength)
  return out
}

/**
 * Protobuf encoding of PutBlocksRequest {seq = 1, cid = 2, shard = 8}: one erasure-coded shard
 * (encoded with its header) of the block `cid`, sent on the same stream as blocks.
 */
export function encodePutShardRequest(seq: bigint, cid: Uint8Array, shard: Uint8Array): Buffer {
  const head = encodePutBlocksRequest(seq, cid, new Uint8Array(0))
  const len: number[] = []
  let v = shard.byteLength
  while (v >= 0x80) {
    len.push((v & 0x7f) | 0x80)
    v >>>= 7
  }
  len.push(v)
  const out = Buffer.allocUnsafe(head.byteLength + 1 + len.length + shard.byteLength)
  head.copy(out, 0)
  out[head.byteLength] = 0x42 // field 8, length-delimited
  out.set(len, head.byteLength + 1)
  out.set(shard, head.byteLength + 1 + len.length)
  return out
}

/** A storage node as a coordinating process knows it: its membership record and gRPC clients. */
export interface NodeHandle extends Member {
  client: BlockServiceClient
  /** ShardService on the same channel. */
  shards: ShardServiceClient
}

const CHANNEL_OPTIONS: ChannelOptions = {
  'grpc.max_receive_message_length': MAX_GRPC_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_GRPC_MESSAGE_BYTES,
  // Notice a dead peer on an idle connection within ~20 s instead of the OS's TCP timeout.
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  // Receive window for blocks coming back from nodes (reads): Node's 64 KiB default would need
  // several round trips per 256 KiB block.
  'grpc-node.flow_control_window': 32 * 1024 * 1024,
  // Reconnect quickly after a node restarts (the default backoff grows to 120 s).
  'grpc.initial_reconnect_backoff_ms': 250,
  'grpc.max_reconnect_backoff_ms': 5_000,
  // A restarted node can come back at a new address under the same name (a Kubernetes StatefulSet
  // pod gets a new IP): re-resolve within a second of a failure, not grpc-js's default 30 s, during
  // which every call to that node would wait on the old, vanished address.
  'grpc.dns_min_time_between_resolutions_ms': 1_000,
}

/**
 * How long a channel may stay CONNECTING before it is replaced. grpc-js has no connect timeout: a
 * dial to an address that vanished without a reset (a deleted pod's IP) waits for the kernel's SYN
 * retries, up to about two minutes, while calls queue on it and the name is not resolved again
 * (the Kubernetes test saw a node reported down for 40-125 s after it was back at a new IP). A new
 * channel resolves the name afresh and dials the node's current address.
 */
export const CONNECT_TIMEOUT_MS = 5_000

export interface NodeClientsOptions {
  /** Channel credentials for every node (insecure by default; mutual TLS in production). */
  credentials?: ChannelCredentials
  /** See CONNECT_TIMEOUT_MS. */
  connectTimeoutMs?: number
  /** Extra channel options (the TLS server name override). */
  channelOptions?: ChannelOptions
}

/**
 * gRPC clients for the members of a MembershipView, one channel per address, created when a
 * member appears and closed when it is gone from the view. `nodes` is what placement ranks
 * (alive and suspect members), so every write session and read sees the membership of the moment.
 */
export class NodeClients {
  private readonly clients = new Map<string, BlockServiceClient>()
  private readonly shardClients = new Map<string, ShardServiceClient>()
  private readonly credentials: ChannelCredentials
  private readonly connectTimeoutMs: number
  private readonly channelOptions: ChannelOptions
  private readonly unsubscribe: () => void
  /** Handles of the placeable members, rebuilt after a membership change (reads use it per block). */
  private cached: NodeHandle[] | undefined
  /** Members as of the latest change (see replaceOnComeback). */
  private marks: MemberMarks

  constructor(
    readonly membership: MembershipView,
    options: NodeClientsOptions = {},
  ) {
    this.credentials = options.credentials ?? credentials.createInsecure()
    this.connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS
    this.channelOptions = { ...CHANNEL_OPTIONS, ...options.channelOptions }
    this.marks = memberMarks(membership.members())
    this.unsubscribe = membership.onChange((members) => {
      this.cached = undefined
      this.closeDeparted(members)
      this.replaceOnComeback(members)
    })
  }

  /** Placeable members with their clients. */
  get nodes(): NodeHandle[] {
    this.cached ??= this.membership
      .placementMembers()
      .map((m) => ({ ...m, client: this.clientFor(m.address), shards: this.shardClientFor(m.address) }))
    return this.cached
  }

  /** The client for one address (any member, in any state). */
  clientFor(address: string): BlockServiceClient {
    let client = this.clients.get(address)
    if (!client) {
      client = new BlockServiceClientWithPreEncodedPuts(address, this.credentials, this.channelOptions)
      this.clients.set(address, client)
      this.replaceWhenStuck(address, client)
    }
    return client
  }

  /**
   * Follows the client's channel state; when a connection attempt outlasts connectTimeoutMs, the
   * client is closed (its queued calls fail, so reads move on to the next copy) and the next
   * clientFor(address) builds a new one.
   */
  private replaceWhenStuck(address: string, client: BlockServiceClient): void {
    const channel = client.getChannel()
    const follow = (): void => {
      const state = channel.getConnectivityState(false)
      if (state === connectivityState.SHUTDOWN || this.clients.get(address) !== client) return
      const deadline = state === connectivityState.CONNECTING ? Date.now() + this.connectTimeoutMs : Infinity
      channel.watchConnectivityState(state, deadline, (timedOut) => {
        if (timedOut && this.clients.get(address) === client) {
          this.clients.delete(address)
          this.shardClients.delete(address) // it shares the closed channel
          this.cached = undefined
          client.close()
          return
        }
        follow()
      })
    }
    follow()
  }

  /** The ShardService client for one address, sharing the BlockService client's channel. */
  shardClientFor(address: string): ShardServiceClient {
    let client = this.shardClients.get(address)
    if (!client) {
      client = new ShardServiceClient(address, this.credentials, {
        channelOverride: this.clientFor(address).getChannel(),
      })
      this.shardClients.set(address, client)
    }
    return client
  }

  /**
   * A member that restarted (higher incarnation) or is routable again is back now, but its
   * channel may sit in grpc-js's reconnect backoff (up to max_reconnect_backoff_ms) after the
   * failed dials while it was away, and a call on a channel in backoff fails at once: reads would
   * skip a live node for seconds. A channel that is not READY is replaced, so the next call dials
   * at once. (grpc-js has no public way to reset a channel's backoff.)
   */
  private replaceOnComeback(members: readonly Member[]): void {
    const back = membersBack(this.marks, members)
    this.marks = memberMarks(members)
    for (const m of back) {
      const client = this.clients.get(m.address)
      if (client === undefined) continue
      if (client.getChannel().getConnectivityState(false) === connectivityState.READY) continue
      this.clients.delete(m.address)
      this.shardClients.delete(m.address)
      client.close()
    }
  }

  private closeDeparted(members: readonly Member[]): void {
    const known = new Set(members.map((m) => m.address))
    for (const [address, client] of this.clients) {
      if (!known.has(address)) {
        client.close()
        this.clients.delete(address)
        this.shardClients.delete(address)
      }
    }
  }

  close(): void {
    this.unsubscribe()
    for (const c of this.clients.values()) c.close()
    this.clients.clear()
    this.shardClients.clear()
  }
}

export function isServiceError(err: unknown): err is ServiceError {
  return typeof err === 'object' && err !== null && 'code' in err && 'metadata' in err
}

/** Deadline `ms` from now, as grpc-js wants it. */
export function deadlineIn(ms: number): Date {
  return new Date(Date.now() + ms)
}
