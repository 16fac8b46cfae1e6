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

/** What the owners of an erasure-coded block said about its shards (ListShards). */
export interface ShardSituation {
  k: number
  m: number
  /** The block's K+M owners in placement order: owner i holds shard i. */
  owners: readonly Member[]
  selfId: string
  /** Indices of this code this node holds. */
  local: readonly number[]
  /**
   * Indices of this code each owner holds, by owner position; undefined when the owner could not
   * be asked (not routable) or did not answer. This node's own position is read from `local`.
   */
  listings: ReadonlyArray<readonly number[] | undefined>
  /** Indices found on nodes ranked after the owners (written there while an owner was down). */
  elsewhere?: readonly number[]
}

/** What this node, holding shards of a coded block, should do about it. */
export interface ShardDecision {
  /** Whether this node is one of the block's K+M owners, or holds only shards that belong elsewhere. */
  role: 'owner' | 'misplaced'
  /** Indices whose owner is routable, answered, and lacks that shard. */
  missing: number[]
  /** Indices whose owner cannot be asked now: never written to, never assumed. */
  unknown: number[]
  /**
   * This node rebuilds the missing shards: it is the first owner, in placement order, holding a
   * shard of the block (every holder surveys, one writes). A misplaced holder is responsible only
   * when no owner holds any shard (it may hold the last ones).
   */
  responsible: boolean
  /**
   * Shards held here whose owner is another node that answered: written there if it lacks them,
   * and dropped here once it confirms it holds them.
   */
  handOff: number[]
  /** Shards held here whose owner cannot be asked: kept until it can. */
  waiting: number[]
  /** Distinct indices known to exist (owners, this node, nodes ranked after the owners). */
  found: number
  /** Fewer than K shards known: the block cannot be rebuilt now. */
  unrecoverable: boolean
  /** Queue priority: the losses the block still survives, plus one (found − K + 1, at least 0). */
  copies: number
}

/**
 * The repair decision for one erasure-coded block this node holds shards of. Pure, like decide():
 * every holder reaches the same conclusion about who rebuilds.
 */
export function decideShards(s: ShardSituation): ShardDecision {
  const selfAt = s.owners.findIndex((o) => o.id === s.selfId)
  const held = s.owners.map((o, i) => (i === selfAt ? s.local : isRoutable(o) ? s.listings[i] : undefined))
  const missing: number[] = []
  const unknown: number[] = []
  const found = new Set<number>([...s.local, ...(s.elsewhere ?? [])])
  held.forEach((indices, i) => {
    if (indices === undefined) {
      unknown.push(i)
      return
    }
    for (const index of indices) found.add(index)
    if (!indices.includes(i)) missing.push(i)
  })
  const firstHolder = held.findIndex((indices) => indices !== undefined && indices.length > 0)
  const role = selfAt >= 0 ? 'owner' : 'misplaced'
  const responsible = role === 'owner' ? firstHolder === selfAt : firstHolder < 0
  const away = s.local.filter((index) => index !== selfAt && index < s.owners.length)
  const handOff = away.filter((index) => held[index] !== undefined)
  return {
    role,
    missing,
    unknown,
    responsible,
    handOff,
    waiting: away.filter((index) => held[index] === undefined),
    found: found.size,
    unrecoverable: found.size < s.k,
    copies: Math.max(0, found.size - s.k + 1),
  }
}
