import { Metadata } from '@grpc/grpc-js'
import {
  BlockNotFoundError,
  blockKey,
  type CID,
  HASH_IDENTITY,
  isAbortError,
  isMycelError,
  placeCopies,
  UpstreamUnavailableError,
} from '@mycel/core'
import type { ClusterBlockstore } from './cluster-blockstore.js'
import { blockLinks, isLeafCodec } from './ipld-links.js'
import { deadlineIn, type NodeHandle } from './node-clients.js'

export interface DagPresenceOptions {
  signal?: AbortSignal
  /** Interior blocks fetched at once. */
  concurrency?: number
  /** Called as blocks are found, with the count so far. */
  onProgress?: (blocks: number) => void
}

/** Leaf CIDs checked per HasBlocks round. */
const HAS_BATCH = 512

/**
 * Checks that every block of the DAG under `root` is stored somewhere in the cluster, and counts
 * them. Interior blocks are fetched (verified) to read their links; leaves (raw blocks) are only
 * asked for with HasBlocks, first from their placement, then from every other node, so a 1 GiB
 * file costs a few dozen block reads and a handful of HasBlocks calls. BlockNotFoundError names
 * the first missing block; UpstreamUnavailableError when too many nodes were unreachable to tell.
 */
export async function checkDagPresence(
  cluster: ClusterBlockstore,
  root: CID,
  opts: DagPresenceOptions = {},
): Promise<{ blocks: number }> {
  const context = `in the DAG of ${root.toString()} (it is not stored in the cluster)`
  const seen = new Set<string>()
  const interior: CID[] = []
  let leaves: CID[] = []
  let blocks = 0
  const found = (n: number) => {
    blocks += n
    opts.onProgress?.(blocks)
  }
  const enqueue = (cid: CID) => {
    const key = cid.toString()
    if (seen.has(key)) return
    seen.add(key)
    if (cid.multihash.code === HASH_IDENTITY) found(1)
    else if (isLeafCodec(cid.code)) leaves.push(cid)
    else interior.push(cid)
  }
  const flushLeaves = async (all: boolean) => {
    while (leaves.length >= (all ? 1 : HAS_BATCH)) {
      const batch = leaves.slice(0, HAS_BATCH)
      leaves = leaves.slice(HAS_BATCH)
      await assertStored(cluster, batch, context, opts.signal)
      found(batch.length)
    }
  }
  enqueue(root)
  const concurrency = opts.concurrency ?? 8
  while (interior.length > 0 || leaves.length > 0) {
    opts.signal?.throwIfAborted()
    const wave = interior.splice(0, concurrency)
    const fetched = await Promise.all(
      wave.map(async (cid) => {
        try {
          return { cid, bytes: await cluster.getBlock(cid, { signal: opts.signal }) }
        } catch (err) {
          if (isMycelError(err) && err.code === 'BLOCK_NOT_FOUND')
            throw new BlockNotFoundError(cid.toString(), context)
          throw err
        }
      }),
    )
    found(fetched.length)
    for (const { cid, bytes } of fetched) for (const link of blockLinks(cid, bytes)) enqueue(link)
    await flushLeaves(interior.length === 0)
  }
  return { blocks }
}

/** Throws unless every CID is held by at least one node. */
async function assertStored(
  cluster: ClusterBlockstore,
  cids: CID[],
  context: string,
  signal?: AbortSignal,
): Promise<void> {
  const nodes = cluster.nodes
  const { replication, writeQuorum, rpcTimeoutMs } = cluster.config
  const missing = new Map<string, { cid: CID; asked: Set<string>; unreachable: number }>()
  // First round: each block's placement (where it should be); then everyone not yet asked.
  const firstAsk = new Map<string, { node: NodeHandle; cids: CID[] }>()
  for (const cid of cids) {
    missing.set(cid.toString(), { cid, asked: new Set(), unreachable: 0 })
    for (const node of placeCopies(blockKey(cid), nodes, replication).slice(0, replication)) {
      const entry = firstAsk.get(node.id) ?? { node, cids: [] }
      entry.cids.push(cid)
      firstAsk.set(node.id, entry)
    }
  }
  const ask = async (rounds: Array<{ node: NodeHandle; cids: CID[] }>) => {
    await Promise.all(
      rounds.map(async ({ node, cids: asking }) => {
        for (const cid of asking) missing.get(cid.toString())?.asked.add(node.id)
        try {
          const has = await hasBlocks(node, asking, rpcTimeoutMs, signal)
          asking.forEach((cid, i) => {
            if (has[i]) missing.delete(cid.toString())
          })
        } catch (err) {
          if (isAbortError(err) || signal?.aborted) throw err
          for (const cid of asking) {
            const m = missing.get(cid.toString())
            if (m !== undefined) m.unreachable++
          }
        }
      }),
    )
  }
  await ask([...firstAsk.values()])
  if (missing.size === 0) return
  const secondAsk = nodes
    .map((node) => ({
      node,
      cids: [...missing.values()].filter((m) => !m.asked.has(node.id)).map((m) => m.cid),
    }))
    .filter((r) => r.cids.length > 0)
  await ask(secondAsk)
  for (const m of missing.values()) {
    // An acknowledged block has W copies: with fewer than W nodes unreachable, one would have said yes.
    if (m.unreachable >= writeQuorum) {
      throw new UpstreamUnavailableError(
        `cannot tell whether block ${m.cid.toString()} is stored: ${m.unreachable} nodes unreachable`,
      )
    }
    throw new BlockNotFoundError(m.cid.toString(), context)
  }
}

function hasBlocks(
  node: NodeHandle,
  cids: CID[],
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<boolean[]> {
  return new Promise((resolve, reject) => {
    const call = node.client.hasBlocks(
      { cids: cids.map((c) => Buffer.from(c.bytes)) },
      new Metadata(),
      { deadline: deadlineIn(timeoutMs) },
      (err, res) => {
        signal?.removeEventListener('abort', onAbort)
        if (err) reject(err)
        else resolve(res.has)
      },
    )
    const onAbort = () => call.cancel()
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
