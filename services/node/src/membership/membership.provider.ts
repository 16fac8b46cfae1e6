import { type MembershipView, type NodeEnv, StaticMembership } from '@mycel/core'

/** DI token of the node's MembershipView (what placement, repair and coordination see). */
export const MEMBERSHIP = Symbol('MEMBERSHIP')

/**
 * Static membership from MYCEL_PEERS (every node's gRPC address, this one included), keyed by
 * address like the gateway's. A node started without peers knows only itself.
 */
export function staticNodeMembership(config: NodeEnv): MembershipView {
  const self = config.MYCEL_ADVERTISE_ADDRESS ?? config.MYCEL_GRPC_LISTEN
  const peers = config.MYCEL_PEERS.includes(self) ? config.MYCEL_PEERS : [self, ...config.MYCEL_PEERS]
  return new StaticMembership(
    peers.map((address) => ({ address, zone: address === self ? config.MYCEL_ZONE : 'default' })),
  )
}
