/// <reference path="../../services/node/src/types/nxtedition-rocksdb.d.ts" />
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { Metadata } from '@grpc/grpc-js'
import { isPlaceable, type Member, type PlacementNode, placeCopies } from '@mycel/core'
import { ROCKS_COLUMNS } from '@mycel/node'
import type { BlockServiceClient } from '@mycel/proto'
import { RocksLevel } from '@nxtedition/rocksdb'
import { readyBlockClient } from './grpc.js'
import { poll } from './poll.js'

/**
 * Background timings for repair tests: passes seconds apart, repair unthrottled. Scrubbing keeps
 * its default rate (one pass after start); FAST_SCRUB is for the tests that wait for it.
 */
export const FAST_REPAIR: Record<string, string> = {
  MYCEL_REPAIR_INTERVAL_MS: '2000',
  MYCEL_REPAIR_RATE_BYTES: String(1024 * 1024 * 1024),
}

/** FAST_REPAIR with a scrubber that re-reads everything every second. */
export const FAST_SCRUB: Record<string, string> = {
  ...FAST_REPAIR,
  MYCEL_SCRUB_RATE_BYTES: String(256 * 1024 * 1024),
  MYCEL_SCRUB_INTERVAL_MS: '1000',
}

export interface NodeRepair {
  underReplicated: number
  misplaced: number
  unavailable: number
  queued: number
  blocksRepaired: number
  blocksHandedOff: number
  shardsRebuilt: number
  lastPassStartedAt: string | null
  lastPassCompletedAt: string | null
}

/** A member as the gateway's status shows it: its record, reachability and latest stats. */
export interface StatusNode extends Member {
  reachable: boolean
  blocks?: number
  blockBytes?: number
  repair?: NodeRepair
  scrub?: { corruptFound: number; corruptRepaired: number; lastPassCompletedAt: string | null }
}

export interface ClusterStatus {
  nodes: StatusNode[]
  nodesUp: number
  ready: boolean
  underReplicated: number
  misplaced: number
  unavailable: number
  /** Erasure-coded shards missing on their owners, held off their owners, and blocks short of K. */
  shardsMissing: number
  shardsMisplaced: number
  shardBlocksUnrecoverable: number
  repair: {
    queued: number
    shardsRebuilt: number
    bytesRepaired: number
    blocksHandedOff: number
    rate: number
    lastPassCompletedAt: string | null
  }
  scrub: { corruptFound: number; corruptRepaired: number }
}

export async function clusterStatus(gatewayUrl: string): Promise<ClusterStatus> {
  const res = await fetch(`${gatewayUrl}/mycel/v1/status`)
  if (!res.ok) throw new Error(`status answered ${res.status}`)
  return (await res.json()) as ClusterStatus
}

/** Polls `probe` until `cond` holds of its answer; the timeout's error shows the last answer. */
export function waitFor<T>(
  what: string,
  probe: () => Promise<T>,
  cond: (v: T) => boolean,
  timeoutMs = 120_000,
): Promise<T> {
  return poll(what, timeoutMs, async () => {
    const v = await probe()
    if (cond(v)) return v
    throw new Error(`last seen ${JSON.stringify(v)}`)
  })
}

/** The members that are alive and answered the gateway's latest stats probe. */
export function liveMembers(s: ClusterStatus): StatusNode[] {
  return s.nodes.filter((n) => n.state === 'alive' && n.reachable)
}

/**
 * Repair has nothing left: exactly `nodes` members alive and answering, each with a complete pass
 * that started after `since` (so it saw the membership of that moment), no block under-replicated,
 * misplaced or waiting on an unreachable target, no shard missing or off its owner, queues empty.
 */
export function repairQuiet(s: ClusterStatus, nodes: number, since: Date): boolean {
  const after = since.toISOString()
  const live = liveMembers(s)
  return (
    live.length === nodes &&
    s.nodesUp === nodes &&
    live.every(
      (n) =>
        n.repair !== undefined &&
        n.repair.lastPassStartedAt !== null &&
        n.repair.lastPassStartedAt > after &&
        n.repair.lastPassCompletedAt !== null,
    ) &&
    s.underReplicated === 0 &&
    s.misplaced === 0 &&
    s.unavailable === 0 &&
    s.shardsMissing === 0 &&
    s.shardsMisplaced === 0 &&
    s.shardBlocksUnrecoverable === 0 &&
    s.repair.queued === 0
  )
}

export function waitForRepairQuiet(gatewayUrl: string, nodes: number, since: Date, timeoutMs = 180_000) {
  return waitFor(
    'repair quiet',
    () => clusterStatus(gatewayUrl),
    (s) => repairQuiet(s, nodes, since),
    timeoutMs,
  )
}

/**
 * The status shows a healthy cluster: `alive` members alive and answering, every other member
 * declared dead (none joining, suspect or left), nothing under-replicated, misplaced or unavailable.
 */
export function assertHealthy(s: ClusterStatus, alive: number): void {
  const states = s.nodes.map((n) => `${n.id} ${n.state}${n.reachable ? '' : ' (unreachable)'}`).join(', ')
  assert.equal(liveMembers(s).length, alive, `alive members: ${states}`)
  assert.ok(
    s.nodes.every((n) => n.state === 'alive' || n.state === 'dead'),
    `every member alive or dead: ${states}`,
  )
  assert.equal(s.ready, true, 'gateway ready')
  assert.deepEqual(
    { underReplicated: s.underReplicated, misplaced: s.misplaced, unavailable: s.unavailable },
    { underReplicated: 0, misplaced: 0, unavailable: 0 },
  )
}

/** Every block key (multihash, hex) a node holds, through ListBlocks pages. */
export async function listBlockKeys(address: string): Promise<Set<string>> {
  const client = await readyBlockClient(address)
  try {
    const keys = new Set<string>()
    let startAfter = Buffer.alloc(0)
    for (;;) {
      const page = await listPage(client, startAfter)
      for (const b of page.blocks) keys.add(Buffer.from(b.multihash).toString('hex'))
      if (page.done || page.blocks.length === 0) return keys
      startAfter = Buffer.from((page.blocks.at(-1) as { multihash: Buffer }).multihash)
    }
  } finally {
    client.close()
  }
}

function listPage(client: BlockServiceClient, startAfter: Buffer) {
  return new Promise<{ blocks: Array<{ multihash: Buffer; durability?: unknown }>; done: boolean }>(
    (resolve, reject) =>
      client.listBlocks(
        { startAfter, limit: 500 },
        new Metadata(),
        { deadline: Date.now() + 10_000 },
        (err, res) => (err ? reject(err) : resolve(res)),
      ),
  )
}

/**
 * The placement members of a status, keyed by node id as nodes and gateways rank them: the members
 * membership calls placeable (alive, suspect, left), with their zones and weights.
 */
export function placementOf(s: ClusterStatus): PlacementNode[] {
  return s.nodes
    .filter(isPlaceable)
    .map(({ id, zone, weight }) => ({ id, zone, weight }))
    .sort((a, b) => a.id.localeCompare(b.id))
}

/** Node ids of the first `copies` nodes of a block's placement. */
export function targetsOf(keyHex: string, nodes: readonly PlacementNode[], copies = 3): string[] {
  return placeCopies(Buffer.from(keyHex, 'hex'), nodes, copies)
    .slice(0, copies)
    .map((n) => n.id)
}

/** Every block held by any of `members`, and the ids of those that hold it. */
export async function holdings(
  members: readonly { id: string; address: string }[],
): Promise<Map<string, Set<string>>> {
  const byNode = await Promise.all(members.map((m) => listBlockKeys(m.address)))
  const out = new Map<string, Set<string>>()
  byNode.forEach((keys, i) => {
    for (const k of keys) {
      const set = out.get(k) ?? new Set<string>()
      set.add((members[i] as { id: string }).id)
      out.set(k, set)
    }
  })
  return out
}

/** Each block is on exactly its R placement targets: full redundancy, nothing misplaced. */
export function assertPlaced(
  held: Map<string, Set<string>>,
  nodes: readonly PlacementNode[],
  copies = 3,
): void {
  for (const [key, on] of held) {
    assert.deepEqual([...on].sort(), targetsOf(key, nodes, copies).sort(), `block ${key.slice(0, 16)}…`)
  }
}

/**
 * Corrupts blocks in a STOPPED node's RocksDB as a failing disk would: the stored bytes change
 * (one byte flipped) while the block's record stays, so the node still believes it holds a good
 * copy. Uses the RocksDB binding directly; the node has no such backdoor.
 */
export async function corruptBlocksOnDisk(nodeDataDir: string, keysHex: readonly string[]): Promise<void> {
  // Every column family must be named to open the database.
  const columns = ROCKS_COLUMNS
  const db = new RocksLevel(join(nodeDataDir, 'blocks'), {
    columns,
    keyEncoding: 'buffer',
    valueEncoding: 'buffer',
  })
  await db.open({ columns, createIfMissing: false })
  try {
    const keys = keysHex.map((k) => Buffer.from(k, 'hex'))
    const values = (await db.getMany(keys, { valueEncoding: 'buffer' })) as Array<Buffer | undefined>
    const batch = db.batch()
    values.forEach((v, i) => {
      if (v === undefined) throw new Error(`block ${keysHex[i]} is not stored in ${nodeDataDir}`)
      const bad = Buffer.from(v)
      bad[bad.length >> 1] = (bad[bad.length >> 1] ?? 0) ^ 0xff
      batch.put(keys[i] as Buffer, bad)
    })
    await batch.write({ sync: true })
  } finally {
    await db.close()
  }
}
