import type { RepairStats, ScrubStats } from '@mycel/proto'

/** One node's repair figures as the status endpoint shows them (see RepairStats in block.proto). */
export interface NodeRepairStatus {
  blocksScanned: number
  underReplicated: number
  misplaced: number
  unavailable: number
  queued: number
  blocksRepaired: number
  bytesRepaired: number
  blocksHandedOff: number
  bytesHandedOff: number
  rateBytesPerSecond: number
  lastPassStartedAt: string | null
  lastPassCompletedAt: string | null
  passRunning: boolean
  passScanned: number
  /** Erasure-coded shards missing on reachable owners, and blocks with fewer than K shards. */
  shardsMissing: number
  shardBlocksUnrecoverable: number
  shardsRebuilt: number
  shardsHandedOff: number
  shardsMisplaced: number
}

export interface NodeScrubStatus {
  passBlocks: number
  passBytes: number
  lastPassCompletedAt: string | null
  corruptFound: number
  corruptRepaired: number
  rateBytesPerSecond: number
}

const iso = (ms: bigint) => (ms === 0n ? null : new Date(Number(ms)).toISOString())

export function nodeRepairStatus(r: RepairStats | undefined): NodeRepairStatus | undefined {
  if (r === undefined) return undefined
  return {
    blocksScanned: Number(r.blocksScanned),
    underReplicated: Number(r.underReplicated),
    misplaced: Number(r.misplaced),
    unavailable: Number(r.unavailable),
    queued: Number(r.queued),
    blocksRepaired: Number(r.blocksRepaired),
    bytesRepaired: Number(r.bytesRepaired),
    blocksHandedOff: Number(r.blocksHandedOff),
    bytesHandedOff: Number(r.bytesHandedOff),
    rateBytesPerSecond: r.rateBytesPerSecond,
    lastPassStartedAt: iso(r.lastPassStartedAtMs),
    lastPassCompletedAt: iso(r.lastPassCompletedAtMs),
    passRunning: r.passRunning,
    passScanned: Number(r.passScanned),
    shardsMissing: Number(r.shardsMissing),
    shardBlocksUnrecoverable: Number(r.shardBlocksUnrecoverable),
    shardsRebuilt: Number(r.shardsRebuilt),
    shardsHandedOff: Number(r.shardsHandedOff),
    shardsMisplaced: Number(r.shardsMisplaced),
  }
}

export function nodeScrubStatus(s: ScrubStats | undefined): NodeScrubStatus | undefined {
  if (s === undefined) return undefined
  return {
    passBlocks: Number(s.passBlocks),
    passBytes: Number(s.passBytes),
    lastPassCompletedAt: iso(s.lastPassCompletedAtMs),
    corruptFound: Number(s.corruptFound),
    corruptRepaired: Number(s.corruptRepaired),
    rateBytesPerSecond: Number(s.rateBytesPerSecond),
  }
}

/** The oldest timestamp, or null when any node has none yet (the cluster has not completed). */
function oldest(values: Array<string | null>): string | null {
  if (values.length === 0 || values.some((v) => v === null)) return null
  return (values as string[]).sort()[0] ?? null
}

const total = <T>(xs: T[], f: (x: T) => number) => xs.reduce((a, x) => a + f(x), 0)

/**
 * Cluster-wide figures from the nodes that answered. Counts add up without double counting: each
 * under-replicated block is counted by its responsible holder only, each misplaced copy by the
 * node holding it. `lastPassCompletedAt` is the oldest of the nodes' last complete passes, so
 * figures newer than a fault mean every node has looked since.
 */
export function clusterRepairStatus(nodes: Array<{ repair?: NodeRepairStatus; scrub?: NodeScrubStatus }>) {
  const repair = nodes.flatMap((n) => (n.repair ? [n.repair] : []))
  const scrub = nodes.flatMap((n) => (n.scrub ? [n.scrub] : []))
  return {
    underReplicated: total(repair, (r) => r.underReplicated),
    misplaced: total(repair, (r) => r.misplaced),
    unavailable: total(repair, (r) => r.unavailable),
    shardsMissing: total(repair, (r) => r.shardsMissing),
    shardBlocksUnrecoverable: total(repair, (r) => r.shardBlocksUnrecoverable),
    shardsMisplaced: total(repair, (r) => r.shardsMisplaced),
    repair: {
      queued: total(repair, (r) => r.queued),
      blocksScanned: total(repair, (r) => r.blocksScanned),
      blocksRepaired: total(repair, (r) => r.blocksRepaired),
      bytesRepaired: total(repair, (r) => r.bytesRepaired),
      blocksHandedOff: total(repair, (r) => r.blocksHandedOff),
      bytesHandedOff: total(repair, (r) => r.bytesHandedOff),
      shardsRebuilt: total(repair, (r) => r.shardsRebuilt),
      shardsHandedOff: total(repair, (r) => r.shardsHandedOff),
      rate: total(repair, (r) => r.rateBytesPerSecond),
      passesRunning: repair.filter((r) => r.passRunning).length,
      lastPassCompletedAt: oldest(repair.map((r) => r.lastPassCompletedAt)),
    },
    scrub: {
      corruptFound: total(scrub, (s) => s.corruptFound),
      corruptRepaired: total(scrub, (s) => s.corruptRepaired),
      lastPassCompletedAt: oldest(scrub.map((s) => s.lastPassCompletedAt)),
    },
  }
}
