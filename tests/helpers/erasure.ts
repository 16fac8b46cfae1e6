import { join } from 'node:path'
import { credentials, Metadata } from '@grpc/grpc-js'
import { decode as decodeDagPb } from '@ipld/dag-pb'
import { blockKey, type CID, createLogger, parseCid, placeCopies, shardKey } from '@mycel/core'
import { RocksBlockStore, RocksShardStore } from '@mycel/node'
import { type ShardRef, ShardServiceClient } from '@mycel/proto'
import type { TestCluster } from './cluster.js'
import { sha256 } from './data.js'
import { allAlive } from './membership.js'

/**
 * Indices of the cluster's nodes in the placement order of `cid` for `count` copies or shards
 * (placement ranks the gossip node ids), over every node but `without` (members declared dead).
 */
export function placementOf(cluster: TestCluster, cid: CID, count: number, without: number[] = []): number[] {
  const nodes = cluster.nodes
    .map((_, i) => ({ id: cluster.nodeId(i), zone: 'default', weight: 1, index: i }))
    .filter((n) => !without.includes(n.index))
  return placeCopies(blockKey(cid), nodes, count).map((n) => n.index)
}

function shardClient(address: string): ShardServiceClient {
  return new ShardServiceClient(address, credentials.createInsecure(), {
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
  })
}

const deadline = () => ({ deadline: new Date(Date.now() + 10_000) })

/** Which shards of `cid` a node holds (ListShards). */
export async function listShards(address: string, cid: CID): Promise<ShardRef[]> {
  const client = shardClient(address)
  try {
    return await new Promise((resolve, reject) =>
      client.listShards({ cids: [Buffer.from(cid.bytes)] }, new Metadata(), deadline(), (err, res) =>
        err ? reject(err) : resolve(res.blocks[0]?.shards ?? []),
      ),
    )
  } finally {
    client.close()
  }
}

/** Verified shards of `cid` a node serves (GetShards, all indices). */
export async function getShards(address: string, cid: CID): Promise<Buffer[]> {
  const client = shardClient(address)
  try {
    return await new Promise((resolve, reject) =>
      client.getShards(
        { cid: Buffer.from(cid.bytes), indices: [], k: 0, m: 0 },
        new Metadata(),
        deadline(),
        (err, res) => (err ? reject(err) : resolve(res.shards)),
      ),
    )
  } finally {
    client.close()
  }
}

/**
 * Damages shard `index` of `cid` on node `node` the way a bad disk would: with the node stopped,
 * its stored value is overwritten in RocksDB (same length, flipped bytes), then the node restarts
 * and the call returns once every node sees it alive.
 */
export async function corruptShard(
  cluster: TestCluster,
  node: number,
  cid: CID,
  k: number,
  m: number,
  index: number,
): Promise<void> {
  await cluster.nodes[node]!.stop()
  const blocks = await RocksBlockStore.open({
    path: join(cluster.dataDir, `node-${node}`, 'blocks'),
    syncWrites: true,
    logger: createLogger('test', 'silent'),
  })
  const shards = await RocksShardStore.open(blocks.shared(), { logger: createLogger('test', 'silent') })
  try {
    const { shards: held } = await shards.get(cid, { k, m, indices: [index] })
    const good = held[0]
    if (good === undefined) throw new Error(`node ${node} holds no shard ${index} of ${cid}`)
    const bad = Buffer.from(good.bytes)
    for (let i = bad.length - 100; i < bad.length; i++) bad[i] = (bad[i] as number) ^ 0x5a
    await shards.putUnverifiedForTesting(shardKey(cid.multihash.bytes, k, m, index), bad)
  } finally {
    await shards.close()
    await blocks.close()
  }
  await cluster.nodes[node]!.start()
  await allAlive(cluster, RESTART_TIMEOUT_MS)
}

/**
 * How long a restarted node may take until every node and the gateway see it alive again: a
 * restart takes seconds here, but two busy cores shared by several clusters stretch it.
 */
export const RESTART_TIMEOUT_MS = 120_000

/** Sum of a Prometheus metric's samples whose labels include `labels`. */
export async function metricValue(
  url: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  let sum = 0
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line)
    if (m === null || m[1] !== name) continue
    const l = m[2] ?? ''
    if (Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`))) sum += Number(m[3])
  }
  return sum
}

/** The raw leaves a file's root links to (the root itself for a single-block file). */
export async function leavesOf(gatewayUrl: string, root: string): Promise<CID[]> {
  const cid = parseCid(root)
  if (cid.code === 0x55) return [cid]
  const res = await fetch(`${gatewayUrl}/ipfs/${root}?format=raw`)
  const node = decodeDagPb(new Uint8Array(await res.arrayBuffer()))
  return node.Links.map((l) => l.Hash as unknown as CID)
}

/** GET /ipfs/{cid}: the status, and the body's hash when the whole body arrived (else undefined). */
export async function download(
  gatewayUrl: string,
  cid: string,
): Promise<{ status: number; hash?: string; text?: string }> {
  const res = await fetch(`${gatewayUrl}/ipfs/${cid}`)
  try {
    const body = Buffer.from(await res.arrayBuffer())
    return { status: res.status, hash: res.status === 200 ? sha256(body) : undefined, text: body.toString() }
  } catch {
    return { status: res.status }
  }
}
