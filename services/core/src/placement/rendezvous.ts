import { createHash } from 'node:crypto'

/** A node as placement sees it: identity, failure domain and relative capacity. */
export interface PlacementNode {
  /** Stable identity; the placement of every block depends on it. */
  id: string
  /** Failure domain (zone). Copies go to distinct zones first. */
  zone: string
  /** Relative capacity (> 0); a node of weight 2 gets about twice the blocks of weight 1. */
  weight: number
}

const TWO_POW_64 = 2 ** 64

/**
 * Weighted rendezvous score of `node` for `key` (Schindelhauer and Schomaker's logarithmic
 * method): score = -weight / ln(u) with u uniform in (0, 1) from a hash of (node, key). The node
 * with the highest score wins; adding or removing a node only moves the keys it wins or held,
 * which is the minimum possible share.
 */
export function rendezvousScore(nodeId: string, key: Uint8Array, weight: number): number {
  const h = createHash('sha256').update(nodeId).update('\0').update(key).digest()
  const u = (Number(h.readBigUInt64BE(0)) + 0.5) / TWO_POW_64
  // u is strictly inside (0, 1) for every 64-bit value once rounded to a double below 1.
  const clamped = Math.min(Math.max(u, Number.MIN_VALUE), 1 - Number.EPSILON)
  return -weight / Math.log(clamped)
}

/** All nodes ordered by descending rendezvous score for `key` (ties broken by id). */
export function rankNodes<N extends PlacementNode>(key: Uint8Array, nodes: readonly N[]): N[] {
  return nodes
    .filter((n) => n.weight > 0)
    .map((node) => ({ node, score: rendezvousScore(node.id, key, node.weight) }))
    .sort((a, b) => b.score - a.score || (a.node.id < b.node.id ? -1 : 1))
    .map((s) => s.node)
}

/**
 * The placement of a block: every node, best first, where the first `copies` are spread over as
 * many distinct zones as exist (the highest-ranked node of each zone first), and the rest follow
 * in rank order as fallbacks. Pure: the same (key, nodes) gives the same answer everywhere.
 */
export function placeCopies<N extends PlacementNode>(
  key: Uint8Array,
  nodes: readonly N[],
  copies: number,
): N[] {
  const ranked = rankNodes(key, nodes)
  const chosen: N[] = []
  const zones = new Set<string>()
  for (const node of ranked) {
    if (chosen.length >= copies) break
    if (!zones.has(node.zone)) {
      chosen.push(node)
      zones.add(node.zone)
    }
  }
  for (const node of ranked) {
    if (chosen.length >= copies) break
    if (!chosen.includes(node)) chosen.push(node)
  }
  return [...chosen, ...ranked.filter((n) => !chosen.includes(n))]
}
