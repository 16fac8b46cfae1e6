/// <reference path="../../services/node/src/types/nxtedition-rocksdb.d.ts" />
import { mkdir, mkdtemp } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Metadata } from '@grpc/grpc-js'
import type { LocalClusterPorts } from '@mycel/cli'
import { type PlacementNode, placeCopies } from '@mycel/core'
import type { BlockServiceClient } from '@mycel/proto'
import { RocksLevel } from '@nxtedition/rocksdb'
import { freePortRange, TEST_TMP } from './cluster.js'
import { readyBlockClient } from './grpc.js'

/**
 * Ports and a data directory for up to `maxNodes` nodes, for tests that change a static
 * membership by restarting the cluster with more or fewer nodes on the same addresses and data.
 */
export async function fixedLayout(
  maxNodes: number,
  prefix: string,
): Promise<{ ports: LocalClusterPorts; dataDir: string }> {
  await mkdir(TEST_TMP, { recursive: true })
  return {
    dataDir: await mkdtemp(join(TEST_TMP, prefix)),
    ports: {
      grpc: await freePortRange(maxNodes),
      admin: await freePortRange(maxNodes),
      gateway: await freePortRange(1),
      rpc: 'off',
    },
  }
}

/** Background timings for repair tests: passes seconds apart, everything else unthrottled. */
export const FAST_REPAIR: Record<string, string> = {
  MYCEL_REPAIR_INTERVAL_MS: '2000',
  MYCEL_REPAIR_RATE_BYTES: String(1024 * 1024 * 1024),
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
  lastPassStartedAt: string | null
  lastPassCompletedAt: string | null
}

export interface ClusterStatus {
  nodes: Array<{
    address: string
    state: string
    blocks?: number
    blockBytes?: number
    repair?: NodeRepair
    scrub?: { corruptFound: number; corruptRepaired: number; lastPassCompletedAt: string | null }
  }>
  nodesUp: number
  underReplicated: number
  misplaced: number
  unavailable: number
  repair: { queued: number; bytesRepaired: number; rate: number; lastPassCompletedAt: string | null }
  scrub: { corruptFound: number; corruptRepaired: number }
}

export async function clusterStatus(gatewayUrl: string): Promise<ClusterStatus> {
  const res = await fetch(`${gatewayUrl}/mycel/v1/status`)
  if (!res.ok) throw new Error(`status answered ${res.status}`)
  return (await res.json()) as ClusterStatus
}

/** Polls `cond` until it holds; the error names what was last seen. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T>,
  cond: (v: T) => boolean,
  timeoutMs = 120_000,
): Promise<T> {
  const until = Date.now() + timeoutMs
  let last: T | undefined
  for (;;) {
    try {
      last = await probe()
      if (cond(last)) return last
    } catch (err) {
      last = err as T
    }
    if (Date.now() > until)
      throw new Error(`${what}: not reached in ${timeoutMs} ms; last seen ${JSON.stringify(last)}`)
    await sleep(250)
  }
}

/**
 * Repair has nothing left: `nodes` nodes up, each with a complete pass that started after `since`
 * (so it saw the latest membership), none under-replicated or misplaced, queues empty.
 */
export function repairQuiet(s: ClusterStatus, nodes: number, since: Date): boolean {
  const after = since.toISOString()
  return (
    s.nodesUp === nodes &&
    s.nodes.every(
      (n) =>
        n.repair !== undefined &&
        n.repair.lastPassStartedAt !== null &&
        n.repair.lastPassStartedAt > after &&
        n.repair.lastPassCompletedAt !== null,
    ) &&
    s.underReplicated === 0 &&
    s.misplaced === 0 &&
    s.repair.queued === 0
  )
}

export function waitForRepairQuiet(gatewayUrl: string, nodes: number, since: Date, timeoutMs = 150_000) {
  return waitFor(
    'repair quiet',
    () => clusterStatus(gatewayUrl),
    (s) => repairQuiet(s, nodes, since),
    timeoutMs,
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

/** Static membership as nodes and gateway see it: id = address, one zone, weight 1. */
export function staticNodes(addresses: readonly string[]): PlacementNode[] {
  return addresses.map((id) => ({ id, zone: 'default', weight: 1 }))
}

/** Addresses of the first `copies` nodes of a block's placement. */
export function targetsOf(keyHex: string, nodes: readonly PlacementNode[], copies = 3): string[] {
  return placeCopies(Buffer.from(keyHex, 'hex'), nodes, copies)
    .slice(0, copies)
    .map((n) => n.id)
}

/**
 * Corrupts blocks in a STOPPED node's RocksDB as a failing disk would: the stored bytes change
 * (one byte flipped) while the block's record stays, so the node still believes it holds a good
 * copy. Uses the RocksDB binding directly; the node has no such backdoor.
 */
export async function corruptBlocksOnDisk(nodeDataDir: string, keysHex: readonly string[]): Promise<void> {
  // Every column family must be named to open the database.
  const columns = { default: {}, sizes: {}, meta: {}, repair: {} }
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
