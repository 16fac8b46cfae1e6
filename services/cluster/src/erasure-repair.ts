import { Metadata } from '@grpc/grpc-js'
import {
  blockKey,
  blockMatches,
  type CID,
  decodeBlock,
  decodeShard,
  isRoutable,
  type Logger,
  placeCopies,
  type Shard,
} from '@mycel/core'
import type { ShardRef } from '@mycel/proto'
import { writeShardsOf } from './erasure-read.js'
import { deadlineIn, type NodeHandle } from './node-clients.js'

export interface ShardRepairConfig {
  rpcTimeoutMs: number
  logger: Logger
  /** Waits until `bytes` may be sent (repair's rate limit); called before every shard write. */
  throttle?: (bytes: number) => Promise<void>
}

/** What repairShards found and did for one block. */
export interface ShardRepairReport {
  /** Shard indices whose owner answered that it lacks them (before repair). */
  missing: number[]
  /** Indices rebuilt and written to their owners. */
  rebuilt: number[]
  /** Indices whose owner could not be asked (unreachable, or not routable such as `left`). */
  unknown: number[]
  /** Fewer than K shards could be found: the block cannot be rebuilt now. */
  unrecoverable: boolean
  /** Another holder ranks first and repairs this block; nothing was written. */
  skipped: boolean
}

export interface RepairShardsArgs {
  cid: CID
  k: number
  m: number
  /** Placement members with their clients (NodeClients.nodes). */
  nodes: readonly NodeHandle[]
  /**
   * The calling node's id. When set (and not `force`), the block is repaired only if the caller
   * is the first owner, in placement order, that holds a shard of it: every holder may run the
   * survey, one of them writes.
   */
  self?: string
  /** Repair whoever ranks first (after scrub dropped the caller's own shard). */
  force?: boolean
  /** Shards of this block the caller holds (verified): spares fetching them. */
  local?: readonly Shard[]
  /**
   * What each of the K+M owners answered to ListShards for this block, when the caller already
   * asked (a scan surveys a page of blocks with one call per node); undefined: could not ask.
   */
  listings?: ReadonlyArray<ShardRef[] | undefined>
}

/** Which shards of `cid` a node holds, from its index; undefined when it cannot be asked. */
export function listShardsOn(
  node: NodeHandle,
  cids: readonly CID[],
  timeoutMs: number,
): Promise<ShardRef[][] | undefined> {
  if (!isRoutable(node)) return Promise.resolve(undefined)
  return new Promise((resolve) =>
    node.shards.listShards(
      { cids: cids.map((c) => Buffer.from(c.bytes)) },
      new Metadata(),
      { deadline: deadlineIn(timeoutMs) },
      (err, res) => resolve(err ? undefined : res.blocks.map((b) => b.shards)),
    ),
  )
}

/** Verified shards of `cid` (code K+M, `indices` or all) from one node; empty when it fails. */
export function getShardsFrom(
  node: NodeHandle,
  cid: CID,
  k: number,
  m: number,
  indices: number[],
  timeoutMs: number,
): Promise<Shard[]> {
  return new Promise((resolve) =>
    node.shards.getShards(
      { cid: Buffer.from(cid.bytes), indices, k, m },
      new Metadata(),
      { deadline: deadlineIn(timeoutMs) },
      (err, res) => {
        if (err) return resolve([])
        const out: Shard[] = []
        for (const bytes of res.shards) {
          try {
            const s = decodeShard(bytes)
            if (Buffer.compare(s.cid.multihash.bytes, cid.multihash.bytes) === 0 && s.k === k && s.m === m)
              out.push(s)
          } catch {
            // damaged in transit: not used
          }
        }
        resolve(out)
      },
    ),
  )
}

/**
 * Restores the K+M shards of one erasure-coded block on their owners (the first K+M nodes of
 * placeCopies(key, nodes, K+M)): asks every owner which shards it holds (ListShards), and when
 * some owner lacks its shard, gathers any K shards (from the owners, whatever index they hold,
 * then from the next K+M nodes in rank order), rebuilds the block, checks it against its CID (a
 * wrong reconstruction is never persisted), re-encodes it and writes each missing shard to its
 * owner. Owners that cannot be asked are left alone: a `left` node's data is expected back.
 * Misplaced shards are moved by their holders (the node's repair engine), not here.
 */
export async function repairShards(
  args: RepairShardsArgs,
  cfg: ShardRepairConfig,
): Promise<ShardRepairReport> {
  const { cid, k, m } = args
  const owners = placeCopies(blockKey(cid), args.nodes, k + m).slice(0, k + m)
  const report: ShardRepairReport = {
    missing: [],
    rebuilt: [],
    unknown: [],
    unrecoverable: false,
    skipped: false,
  }
  const listings =
    args.listings ??
    (await Promise.all(owners.map((node) => listShardsOn(node, [cid], cfg.rpcTimeoutMs)))).map((l) => l?.[0])
  /** Which indices of this code each node holds (from its index), undefined when it cannot be asked. */
  const indicesOf = (refs: ShardRef[] | undefined) =>
    refs?.filter((r) => r.k === k && r.m === m).map((r) => r.index)
  const held = listings.map(indicesOf)
  held.forEach((indices, i) => {
    if (indices === undefined) report.unknown.push(i)
    else if (!indices.includes(i)) report.missing.push(i)
  })
  if (report.missing.length === 0) return report
  // The first owner holding any shard of the block writes; the others only survey.
  const first = held.findIndex((indices) => indices !== undefined && indices.length > 0)
  if (!args.force && args.self !== undefined && owners[first]?.id !== args.self) {
    report.skipped = true
    return report
  }

  const have: (Uint8Array | undefined)[] = new Array(k + m).fill(undefined)
  let blockSize = 0
  const take = (s: Shard) => {
    have[s.index] ??= s.data
    blockSize = s.blockSize
  }
  const count = () => have.filter(Boolean).length
  for (const s of args.local ?? []) if (s.k === k && s.m === m) take(s)
  // Where each index can be read: owners first (a shard an owner holds under another index
  // counts too: placement moved and its handoff has not run yet).
  const sources = new Map<number, NodeHandle>()
  const addSources = (nodes: readonly NodeHandle[], indices: ReadonlyArray<number[] | undefined>) => {
    for (const [i, node] of nodes.entries()) {
      for (const index of indices[i] ?? []) if (!sources.has(index)) sources.set(index, node)
    }
  }
  addSources(owners, held)
  const fetchFromSources = async () => {
    // Data shards first: with all K of them nothing needs decoding.
    const wanted = [...sources.keys()].filter((i) => have[i] === undefined).sort((a, b) => a - b)
    while (count() < k && wanted.length > 0) {
      const batch = wanted.splice(0, k - count())
      const got = await Promise.all(
        batch.map((i) => getShardsFrom(sources.get(i) as NodeHandle, cid, k, m, [i], cfg.rpcTimeoutMs)),
      )
      for (const shard of got.flat()) take(shard)
    }
  }
  await fetchFromSources()
  if (count() < k) {
    // Shards written to fallback nodes while an owner was down sit just below the owners.
    const next = placeCopies(blockKey(cid), args.nodes, k + m).slice(k + m, 2 * (k + m))
    const nextListings = await Promise.all(next.map((n) => listShardsOn(n, [cid], cfg.rpcTimeoutMs)))
    addSources(
      next,
      nextListings.map((l) => indicesOf(l?.[0])),
    )
    await fetchFromSources()
  }
  if (count() < k) {
    report.unrecoverable = true
    cfg.logger.error(
      { cid: cid.toString(), k, m, found: count() },
      'erasure-coded block has fewer than K shards left: cannot rebuild it',
    )
    return report
  }
  const block = await decodeBlock(have, k, m, blockSize)
  if (!blockMatches(cid, block)) {
    cfg.logger.error(
      { cid: cid.toString(), k, m },
      'block rebuilt for repair does not match its CID; nothing written',
    )
    report.unrecoverable = true
    return report
  }
  const targets = report.missing.map((index) => ({ node: owners[index] as NodeHandle, index }))
  try {
    await writeShardsOf(cid, block, k, m, targets, cfg)
    report.rebuilt.push(...report.missing)
  } catch (err) {
    // Some may have landed; the next pass finds what is still missing.
    cfg.logger.warn({ cid: cid.toString(), err: String(err) }, 'writing rebuilt shards failed')
  }
  return report
}
