import { type MembershipView, type NodeEnv, StaticMembership } from '@mycel/core'
import { GossipMembership } from './gossip-membership.js'

/** DI token of the node's MembershipView (what placement, repair and coordination see). */
export const MEMBERSHIP = Symbol('MEMBERSHIP')

/**
 * The node's membership: SWIM gossip among the nodes (GossipMembership), which is also a
 * NodeComponent, so NodeModule lists the same instance among the components.
 */
export function gossipMembership(config: NodeEnv): GossipMembership {
  return new GossipMembership(config)
}

/**
 * A fixed membership from MYCEL_PEERS (every node's gRPC address, this one included), keyed by
 * address, every member alive forever. For tests that want placement without a failure detector.
 */
export function staticNodeMembership(config: NodeEnv): MembershipView {
  const self = config.MYCEL_ADVERTISE_ADDRESS ?? config.MYCEL_GRPC_LISTEN
  const peers = config.MYCEL_PEERS.includes(self) ? config.MYCEL_PEERS : [self, ...config.MYCEL_PEERS]
  return new StaticMembership(
    peers.map((address) => ({ address, zone: address === self ? config.MYCEL_ZONE : 'default' })),
  )
}
