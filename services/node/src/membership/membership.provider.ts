import type { NodeEnv } from '@mycel/core'
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
