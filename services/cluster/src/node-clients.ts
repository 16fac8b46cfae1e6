import {
  type ChannelOptions,
  credentials,
  makeGenericClientConstructor,
  type ServiceError,
} from '@grpc/grpc-js'
import { MAX_GRPC_MESSAGE_BYTES, type PlacementNode } from '@mycel/core'
import { type BlockServiceClient, BlockServiceService, PutBlocksRequest } from '@mycel/proto'

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
  creds: ReturnType<typeof credentials.createInsecure>,
  options: ChannelOptions,
) => BlockServiceClient

/**
 * Protobuf encoding of PutBlocksRequest {seq = 1, cid = 2, data = 3} with a single copy of the
 * block. Written by hand because it is the upload's hot path: the generated encoder copies the
 * data three times. A unit test checks it against the generated decoder.
 */
export function encodePutBlocksRequest(seq: bigint, cid: Uint8Array, data: Uint8Array): Buffer {
  const head: number[] = []
  const varint = (n: bigint) => {
    let v = n
    while (v >= 0x80n) {
      head.push(Number(v & 0x7fn) | 0x80)
      v >>= 7n
    }
    head.push(Number(v))
  }
  if (seq !== 0n) {
    head.push(0x08) // field 1, varint
    varint(seq)
  }
  if (cid.byteLength > 0) {
    head.push(0x12) // field 2, length-delimited
    varint(BigInt(cid.byteLength))
    for (const b of cid) head.push(b)
  }
  if (data.byteLength === 0) return Buffer.from(head)
  head.push(0x1a) // field 3, length-delimited
  varint(BigInt(data.byteLength))
  const out = Buffer.allocUnsafe(head.length + data.byteLength)
  out.set(head, 0)
  out.set(data, head.length)
  return out
}

/** A storage node as the gateway knows it, with its gRPC client. */
export interface NodeHandle extends PlacementNode {
  address: string
  client: BlockServiceClient
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
}

/**
 * Static membership: the configured peers, identified by their address. Placement keys on that
 * address, which is stable in `make run` and for StatefulSet pods; gossip membership with
 * persisted node ids replaces this list when the cluster becomes self-managing.
 */
export class NodeClients {
  readonly nodes: NodeHandle[]

  constructor(addresses: readonly string[]) {
    this.nodes = addresses.map((address) => ({
      id: address,
      address,
      zone: 'default',
      weight: 1,
      client: new BlockServiceClientWithPreEncodedPuts(
        address,
        credentials.createInsecure(),
        CHANNEL_OPTIONS,
      ),
    }))
  }

  close(): void {
    for (const n of this.nodes) n.client.close()
  }
}

export function isServiceError(err: unknown): err is ServiceError {
  return typeof err === 'object' && err !== null && 'code' in err && 'metadata' in err
}

/** Deadline `ms` from now, as grpc-js wants it. */
export function deadlineIn(ms: number): Date {
  return new Date(Date.now() + ms)
}
