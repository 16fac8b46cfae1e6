import type { PlacementNode } from '../placement/rendezvous.js'

/**
 * A member's state as the cluster's failure detector sees it. `alive` and `suspect` members are
 * placed on (a suspect node may only be slow: dropping it at once would move data on every
 * hiccup); `dead` and `left` members are not, and their data is repaired elsewhere.
 */
export type MemberState = 'alive' | 'suspect' | 'dead' | 'left'

/** A storage node as membership knows it. Placement keys on `id`, never on the address. */
export interface Member extends PlacementNode {
  /** Stable node id, persisted in the node's data directory. */
  id: string
  /** gRPC address (host:port) peers and gateways dial. */
  address: string
  /** Failure-domain labels: zone first, then host. */
  zone: string
  host: string
  /** Relative capacity (> 0). */
  weight: number
  state: MemberState
  /** Raised only by the member itself, to refute suspicion or announce a change. */
  incarnation: number
}

/** What a process (node or gateway) knows of the cluster's membership. */
export interface MembershipView {
  /** This process's own record, when it is a storage node. */
  readonly self?: Member
  /** Every known member, in any state. */
  members(): readonly Member[]
  /** Members placement ranks: alive and suspect. */
  placementMembers(): readonly Member[]
  /** Called after any member's state or labels change; returns an unsubscribe function. */
  onChange(listener: (members: readonly Member[]) => void): () => void
}

export function isPlaceable(m: Member): boolean {
  return m.state === 'alive' || m.state === 'suspect'
}

/**
 * A fixed membership: every member alive forever. For processes given an explicit node list
 * (tests, and the gateway until it learns the cluster from the nodes).
 */
export class StaticMembership implements MembershipView {
  private readonly list: Member[]

  constructor(members: readonly (Partial<Member> & { address: string })[]) {
    this.list = members.map((m) => ({
      id: m.id ?? m.address,
      address: m.address,
      zone: m.zone ?? 'default',
      host: m.host ?? m.address,
      weight: m.weight ?? 1,
      state: m.state ?? 'alive',
      incarnation: m.incarnation ?? 0,
    }))
  }

  static fromAddresses(addresses: readonly string[]): StaticMembership {
    return new StaticMembership(addresses.map((address) => ({ address })))
  }

  members(): readonly Member[] {
    return this.list
  }

  placementMembers(): readonly Member[] {
    return this.list.filter(isPlaceable)
  }

  onChange(): () => void {
    return () => {}
  }
}
