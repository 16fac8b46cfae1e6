import {
  type DurabilityPolicy,
  isRoutable,
  type Member,
  placeCopies,
  placementWidth,
  samePolicy,
  strongerPolicy,
} from '@mycel/core'

/** What a placement target said about one block (HasBlocks). */
export interface TargetAnswer {
  held: boolean
  /** The target's record of the block, when it holds it. */
  policy?: DurabilityPolicy
}

/** The first `width` members of a block's placement: where its copies belong. */
export function placementTargets(
  key: Uint8Array,
  members: readonly Member[],
  policy: DurabilityPolicy,
): Member[] {
  const width = Math.min(placementWidth(policy), members.length)
  return placeCopies(key, members, width).slice(0, width)
}

export interface BlockSituation {
  /** Placement targets, best first. */
  targets: readonly Member[]
  selfId: string
  /** This node's record of the block. */
  policy: DurabilityPolicy
  /**
   * Answers of the other targets, by member id. A target missing here could not be asked (not
   * routable) or did not answer: its copy is unknown.
   */
  answers: ReadonlyMap<string, TargetAnswer>
}

/** What this node, holding a copy, should do about one block. */
export interface RepairDecision {
  /** Whether this node is one of the block's targets, or holds a copy that belongs elsewhere. */
  role: 'target' | 'misplaced'
  /** Targets known to hold the block (this node too, when it is a target). */
  holders: Member[]
  /** Routable targets known not to hold it. */
  missing: Member[]
  /** Targets whose copy cannot be checked now (`left`, or no answer): never pushed to, never assumed. */
  unknown: Member[]
  /**
   * This node pushes the missing copies: it is the first routable holder in placement order, so
   * in the normal case exactly one node acts for a block. A misplaced holder acts only when no
   * target is known to hold the block (it may be the last copy).
   */
  responsible: boolean
  /** Targets this node should send a copy to. */
  push: Member[]
  /**
   * A misplaced copy may be dropped: every target is routable and confirmed it holds the block.
   * Never while any target is unknown, so the last good copy is never the one dropped.
   */
  mayDelete: boolean
  /** Copies known to survive (targets holding it, plus this node's misplaced copy): queue priority. */
  copies: number
  /** A stronger record a target holds, to adopt here (dedup across uploads of different R). */
  upgrade?: DurabilityPolicy
}

/**
 * The repair decision for one block this node holds. Pure: every node that runs it on the same
 * answers reaches the same conclusion about who is responsible.
 */
export function decide(s: BlockSituation): RepairDecision {
  const role = s.targets.some((t) => t.id === s.selfId) ? 'target' : 'misplaced'
  const holders: Member[] = []
  const missing: Member[] = []
  const unknown: Member[] = []
  let upgrade: DurabilityPolicy | undefined
  let responsible = false
  let firstHolderSeen = false
  for (const t of s.targets) {
    if (t.id === s.selfId) {
      holders.push(t)
      if (!firstHolderSeen) responsible = true
      firstHolderSeen = true
      continue
    }
    const answer = s.answers.get(t.id)
    if (answer === undefined || !isRoutable(t)) {
      unknown.push(t)
    } else if (answer.held) {
      holders.push(t)
      firstHolderSeen = true
      if (answer.policy !== undefined) {
        const stronger = strongerPolicy(upgrade ?? s.policy, answer.policy)
        if (!samePolicy(stronger, s.policy)) upgrade = stronger
      }
    } else {
      missing.push(t)
    }
  }
  if (role === 'misplaced') responsible = holders.length === 0
  return {
    role,
    holders,
    missing,
    unknown,
    responsible,
    push: responsible ? missing : [],
    mayDelete: role === 'misplaced' && unknown.length === 0 && missing.length === 0 && holders.length > 0,
    copies: holders.length + (role === 'misplaced' ? 1 : 0),
    ...(upgrade !== undefined ? { upgrade } : {}),
  }
}
