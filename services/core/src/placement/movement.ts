import { type PlacementNode, placeCopies } from './rendezvous.js'

/** How much data a membership change moves, against the least any placement could move. */
export interface Movement {
  /** Copies (block, node) in the new placement that the old one did not have: transfers. */
  moved: number
  /** The least a placement with the same balance must move (see `placementMovement`). */
  optimal: number
  /** moved / optimal: 1 is the minimum. */
  ratio: number
  /** Copies placed in all (keys × copies). */
  copies: number
}

function zoneWeights(nodes: readonly PlacementNode[]): Map<string, number> {
  const zones = new Map<string, number>()
  for (const n of nodes) zones.set(n.zone, (zones.get(n.zone) ?? 0) + n.weight)
  return zones
}

/**
 * The copies `node` holds under a perfectly balanced placement of `blocks` blocks with `copies`
 * copies each, copies in distinct zones first. Defined where balance has a closed form: one zone
 * (each node holds copies × its share of the weight), or as many zones as copies (each zone
 * holds one copy of every block, shared by weight inside the zone).
 */
export function idealCopies(
  node: PlacementNode,
  nodes: readonly PlacementNode[],
  copies: number,
  blocks: number,
): number {
  const zones = zoneWeights(nodes)
  if (zones.size === 1) {
    const total = [...zones.values()][0] as number
    return (blocks * copies * node.weight) / total
  }
  if (zones.size === copies) return (blocks * node.weight) / (zones.get(node.zone) as number)
  throw new Error(`ideal placement has no closed form for ${copies} copies over ${zones.size} zones`)
}

/**
 * Measures a change from `before` to `after` (one node joining or leaving) over `keys`. A join
 * must at least fill the new node to its balanced share; a leave must at least re-place every
 * copy the leaving node held. Anything above that is data moved between nodes that stayed.
 */
export function placementMovement(
  keys: readonly Uint8Array[],
  before: readonly PlacementNode[],
  after: readonly PlacementNode[],
  copies: number,
): Movement {
  const beforeIds = new Set(before.map((n) => n.id))
  const afterIds = new Set(after.map((n) => n.id))
  const joined = after.filter((n) => !beforeIds.has(n.id))
  const left = before.filter((n) => !afterIds.has(n.id))
  if (joined.length + left.length !== 1) throw new Error('measure one join or one leave at a time')
  let moved = 0
  let leftHeld = 0
  for (const key of keys) {
    const old = new Set(
      placeCopies(key, before, copies)
        .slice(0, copies)
        .map((n) => n.id),
    )
    for (const n of placeCopies(key, after, copies).slice(0, copies)) if (!old.has(n.id)) moved++
    if (left[0] !== undefined && old.has(left[0].id)) leftHeld++
  }
  const optimal = joined[0] !== undefined ? idealCopies(joined[0], after, copies, keys.length) : leftHeld
  return { moved, optimal, ratio: moved / optimal, copies: keys.length * copies }
}
