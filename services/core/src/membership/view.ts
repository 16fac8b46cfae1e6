import type { PlacementNode } from '../placement/rendezvous.js'

/**
 * A member's state as the cluster's failure detector sees it.
 * - `joining`: announced, not yet placed on (still syncing membership).
 * - `alive`: placed on and routed to.
 * - `suspect`: missed probes; still placed on and routed to (it may only be slow: dropping it at
 *   once would move data on every hiccup).
 * - `left`: stopped on purpose (SIGTERM, e.g. a rolling restart): still placed on, since its data
 *   is expected back, but not routed to: reads and writes go to the next nodes in rank order.
 * - `dead`: declared gone after the grace period: no longer placed on; repair restores its data
 *   elsewhere.
 */
export type MemberState = 'joining' | 'alive' | 'suspect' | 'left' | 'dead'

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
  /** Members placement ranks: alive, suspect and left. */
  placementMembers(): readonly Member[]
  /** Called after any member's state or labels change; returns an unsubscribe function. */
  onChange(listener: (members: readonly Member[]) => void): () => void
}

/** Placement ranks this member (its data belongs there). */
export function isPlaceable(m: Member): boolean {
  return m.state === 'alive' || m.state === 'suspect' || m.state === 'left'
}

/** Requests may be sent to this member now. */
export function isRoutable(m: Member): boolean {
  return m.state === 'alive' || m.state === 'suspect'
}

/** Each member's incarnation and routability at one moment, to tell later who came back. */
export type MemberMarks = ReadonlyMap<string, { incarnation: number; routable: boolean }>

export function memberMarks(members: readonly Member[]): MemberMarks {
  return new Map(members.map((m) => [m.id, { incarnation: m.incarnation, routable: isRoutable(m) }]))
}

/**
 * The members that came back since `before`: routable now, and then not routable (or unknown), or
 * with a higher incarnation now (it restarted, or refuted a suspicion: it was away for a moment).
 */
export function membersBack(before: MemberMarks, members: readonly Member[]): Member[] {
  return members.filter((m) => {
    if (!isRoutable(m)) return false
    const was = before.get(m.id)
    return was === undefined || !was.routable || m.incarnation > was.incarnation
  })
}

/**
 * Severity of a state when two records about one member carry the same incarnation (SWIM's
 * rule "dead > suspect > alive", with `joining` below `alive` and `left` between suspect and
 * dead: a node that leaves outranks a suspicion, and a death declared after it outranks both).
 */
const STATE_RANK: Record<MemberState, number> = { joining: 0, alive: 1, suspect: 2, left: 3, dead: 4 }

/**
 * SWIM's precedence: record `a` about a member overrides record `b` about the same member when
 * its incarnation is higher, or equal with a more severe state. Only the member itself raises
 * its incarnation, so stale gossip can never undo a newer claim.
 */
export function supersedes(
  a: Pick<Member, 'state' | 'incarnation'>,
  b: Pick<Member, 'state' | 'incarnation'>,
): boolean {
  return (
    a.incarnation > b.incarnation ||
    (a.incarnation === b.incarnation && STATE_RANK[a.state] > STATE_RANK[b.state])
  )
}

/** Every state, in precedence order (for metrics and status counts). */
export const MEMBER_STATES: readonly MemberState[] = ['joining', 'alive', 'suspect', 'left', 'dead']

/** Listeners of a MembershipView, for its implementations. */
export class MembershipEvents {
  private readonly changeListeners = new Set<(members: readonly Member[]) => void>()
  private readonly updateListeners = new Set<(member: Member, previous: Member | undefined) => void>()

  /** After any change, with every member (MembershipView.onChange). */
  onChange(listener: (members: readonly Member[]) => void): () => void {
    this.changeListeners.add(listener)
    return () => this.changeListeners.delete(listener)
  }

  /** For every accepted change of one member's record, with the record it replaced. */
  onUpdate(listener: (member: Member, previous: Member | undefined) => void): () => void {
    this.updateListeners.add(listener)
    return () => this.updateListeners.delete(listener)
  }

  emitChange(members: readonly Member[]): void {
    for (const l of this.changeListeners) l(members)
  }

  emitUpdate(member: Member, previous: Member | undefined): void {
    for (const l of this.updateListeners) l(member, previous)
  }
}
