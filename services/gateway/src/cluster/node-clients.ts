import { type ChannelOptions, credentials, type ServiceError } from '@grpc/grpc-js'
import { MAX_GRPC_MESSAGE_BYTES, type PlacementNode } from '@mycel/core'
import { BlockServiceClient } from '@mycel/proto'

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
      client: new BlockServiceClient(address, credentials.createInsecure(), CHANNEL_OPTIONS),
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
