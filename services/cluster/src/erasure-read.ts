import { Metadata, status } from '@grpc/grpc-js'
import {
  BlockCorruptError,
  blockKey,
  blockMatches,
  type CID,
  decodeBlock,
  decodeShard,
  encodeShard,
  encodeShards,
  isAbortError,
  isRoutable,
  type Logger,
  placeCopies,
  type Shard,
  UpstreamUnavailableError,
} from '@mycel/core'
import type { GetShardsResponse } from '@mycel/proto'
import { deadlineIn, encodePutShardRequest, isServiceError, type NodeHandle } from './node-clients.js'
import { WriteSession } from './write-session.js'

/** Counters of erasure-coded reads; the embedding service names them (prom-client fits). */
export interface ErasureReadMetrics {
  /** direct: every data shard arrived; degraded: decoded from parity; failed: fewer than K found. */
  ecReads: { inc(labels: { result: 'direct' | 'degraded' | 'failed' }): void }
  shardFetches: { inc(labels: { result: 'ok' | 'missing' | 'corrupt' | 'unreachable' }): void }
  shardReadRepairs: { inc(labels: { result: 'ok' | 'failed' }): void }
}

export interface ErasureReaderConfig {
  rpcTimeoutMs: number
  /** How long a data shard may take before a parity shard is also requested. */
  hedgeMs: number
  logger: Logger
  metrics?: Partial<ErasureReadMetrics>
}

/** How far down the placement ranking a read looks for misplaced shards, in multiples of K+M. */
const SWEEP_WIDTH = 2

/** What one shard request found. */
type Outcome = 'ok' | 'missing' | 'corrupt' | 'unreachable'

/**
 * Reads erasure-coded blocks. Given the first shard a node returned (GetBlock with accept_shard),
 * it fetches the K data shards from their owners in parallel, asks for a parity shard on each
 * failure and for every data shard still outstanding after the hedge deadline, then looks for
 * misplaced shards on the remaining nodes only when the K+M owners could not supply K. It
 * decodes only when a data shard is missing, and verifies the block against its CID before
 * returning it: a wrong reconstruction is never served. Shards found corrupt or missing on a
 * reachable owner are rebuilt from the block and written back (read repair).
 */
export class ErasureReader {
  constructor(private readonly cfg: ErasureReaderConfig) {}

  async read(
    cid: CID,
    first: Shard,
    firstNode: NodeHandle,
    nodes: readonly NodeHandle[],
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    const { k, m, blockSize } = first
    const order = placeCopies(blockKey(cid), nodes, k + m)
    const have: (Uint8Array | undefined)[] = new Array(k + m).fill(undefined)
    /** The encoded shards behind `have`, to check their checksums if the block does not match. */
    const raw: (Uint8Array | undefined)[] = new Array(k + m).fill(undefined)
    have[first.index] = first.data
    raw[first.index] = first.bytes
    const asked = new Set<string>([firstNode.id])
    const report = new Map<string, string>()
    const needsRepair: Array<{ node: NodeHandle; index: number }> = []
    const calls = new AbortController()
    const count = () => have.filter((s) => s !== undefined).length
    let onAbort = () => {}

    try {
      await new Promise<void>((resolve) => {
        let pending = 0
        let nextParity = k
        let swept = false
        let done = false
        const finish = () => {
          done = true
          clearTimeout(hedge)
          resolve()
        }
        onAbort = finish
        signal?.addEventListener('abort', onAbort, { once: true })
        /** Asks `node` for `indices` (all when empty); false when it was asked before or is not routable. */
        const launch = (node: NodeHandle | undefined, indices: number[]): boolean => {
          if (node === undefined || asked.has(node.id)) return false
          asked.add(node.id)
          if (!isRoutable(node)) {
            report.set(node.address, `unreachable (${node.state})`)
            return false
          }
          pending++
          void this.fetch(cid, node, indices, k, m, calls.signal).then(({ outcome, shards, detail }) => {
            pending--
            if (done) return
            this.cfg.metrics?.shardFetches?.inc({ result: outcome })
            for (const s of shards) {
              if (have[s.index] !== undefined) continue
              have[s.index] = s.data
              raw[s.index] = s.bytes
            }
            if (outcome !== 'ok') {
              report.set(node.address, detail)
              // A reachable owner without its shard gets it back once the block is read.
              const owned = order.indexOf(node)
              if (outcome !== 'unreachable' && owned >= 0 && owned < k + m)
                needsRepair.push({ node, index: owned })
            }
            if (count() >= k) return finish()
            if (outcome !== 'ok') launchParity()
            else if (pending === 0) sweep()
          })
          return true
        }
        /** One more parity shard from its owner; the sweep when none is left to ask. */
        const launchParity = () => {
          while (nextParity < k + m) {
            const index = nextParity++
            if (have[index] === undefined && launch(order[index], [index])) return
          }
          if (pending === 0) sweep()
        }
        // The K+M owners could not supply K shards: a shard may sit on a node ranked after them
        // (written there while its owner was down, or not yet handed off after placement moved).
        // Ask the nodes ranked next, as many again as the owners, for any shard of the block.
        const sweep = () => {
          if (swept) return finish()
          swept = true
          for (const node of order.slice(0, SWEEP_WIDTH * (k + m))) launch(node, [])
          if (pending === 0) finish()
        }
        const hedge = setTimeout(() => {
          const outstanding = have.slice(0, k).filter((s) => s === undefined).length
          for (let i = 0; i < outstanding && !done; i++) launchParity()
        }, this.cfg.hedgeMs)
        if (count() >= k) return finish()
        for (let i = 0; i < k && !done; i++) {
          // A data owner that cannot be asked (it answered first, or it is not routable): parity instead.
          if (have[i] === undefined && !launch(order[i], [i])) launchParity()
        }
        if (pending === 0 && !done) sweep()
      })
    } finally {
      signal?.removeEventListener('abort', onAbort)
      calls.abort()
    }
    signal?.throwIfAborted()

    const found = count()
    if (found < k) {
      this.cfg.metrics?.ecReads?.inc({ result: 'failed' })
      const details = [...report].map(([node, why]) => `${node}: ${why}`).join('; ')
      throw new UpstreamUnavailableError(
        `block ${cid.toString()} is erasure-coded (ec:${k}+${m}): found ${found} of the ${k} shards needed to rebuild it` +
          (details ? ` (${details})` : ''),
      )
    }
    const degraded = have.slice(0, k).some((s) => s === undefined)
    let block = await decodeBlock(have, k, m, blockSize)
    if (!blockMatches(cid, block)) block = await this.withoutDamagedShards(cid, have, raw, k, m, blockSize)
    this.cfg.metrics?.ecReads?.inc({ result: degraded ? 'degraded' : 'direct' })
    if (needsRepair.length > 0) void this.readRepair(cid, block, k, m, needsRepair)
    return block
  }

  /**
   * The block did not match its CID: nodes verify shards before serving them, so one was
   * damaged on the way or a peer is faulty. Shards whose checksum fails are dropped and the block
   * is decoded again from the others; without K good ones nothing is served.
   */
  private async withoutDamagedShards(
    cid: CID,
    have: (Uint8Array | undefined)[],
    raw: (Uint8Array | undefined)[],
    k: number,
    m: number,
    blockSize: number,
  ): Promise<Uint8Array> {
    const good = have.map((data, i) => {
      const bytes = raw[i]
      if (data === undefined || bytes === undefined) return undefined
      try {
        decodeShard(bytes)
        return data
      } catch {
        this.cfg.logger.error({ cid: cid.toString(), shard: i }, 'shard from node failed verification')
        return undefined
      }
    })
    if (good.filter(Boolean).length >= k) {
      const block = await decodeBlock(good, k, m, blockSize)
      if (blockMatches(cid, block)) return block
    }
    // Every shard passed its checksum yet the block is wrong (a bug or a forged shard): never serve it.
    this.cfg.metrics?.ecReads?.inc({ result: 'failed' })
    this.cfg.logger.error({ cid: cid.toString(), k, m }, 'block rebuilt from shards does not match its CID')
    throw new BlockCorruptError(cid.toString())
  }

  private fetch(
    cid: CID,
    node: NodeHandle,
    indices: number[],
    k: number,
    m: number,
    signal: AbortSignal,
  ): Promise<{ outcome: Outcome; shards: Shard[]; detail: string }> {
    return new Promise((resolve) => {
      const call = node.shards.getShards(
        { cid: Buffer.from(cid.bytes), indices, k, m },
        new Metadata(),
        { deadline: deadlineIn(this.cfg.rpcTimeoutMs) },
        (err, res: GetShardsResponse) => {
          signal.removeEventListener('abort', onAbort)
          if (err) {
            const why = isServiceError(err) ? err.details || status[err.code] : String(err)
            resolve({ outcome: 'unreachable', shards: [], detail: `unreachable (${why})` })
            return
          }
          const shards: Shard[] = []
          let bad = res.corrupt.length
          for (const bytes of res.shards) {
            try {
              const s = decodeShard(bytes, 'shard', false)
              const same = Buffer.compare(s.cid.multihash.bytes, cid.multihash.bytes) === 0
              if (same && s.k === k && s.m === m) shards.push(s)
            } catch {
              // The node verified it: damaged in transit or a faulty peer.
              bad++
            }
          }
          if (shards.length > 0) resolve({ outcome: 'ok', shards, detail: '' })
          else if (bad > 0) resolve({ outcome: 'corrupt', shards, detail: 'shard failed verification' })
          else resolve({ outcome: 'missing', shards, detail: 'no shard' })
        },
      )
      const onAbort = () => call.cancel()
      if (signal.aborted) call.cancel()
      else signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Writes the shards that reachable owners lacked or had corrupt back, from the verified block. */
  private async readRepair(
    cid: CID,
    block: Uint8Array,
    k: number,
    m: number,
    targets: Array<{ node: NodeHandle; index: number }>,
  ): Promise<void> {
    try {
      await writeShardsOf(cid, block, k, m, targets, this.cfg)
      this.cfg.metrics?.shardReadRepairs?.inc({ result: 'ok' })
      this.cfg.logger.info(
        { cid: cid.toString(), shards: targets.map((t) => `${t.index}@${t.node.address}`) },
        'read repair restored missing shards',
      )
    } catch (err) {
      if (isAbortError(err)) return
      this.cfg.metrics?.shardReadRepairs?.inc({ result: 'failed' })
      this.cfg.logger.warn({ cid: cid.toString(), err: String(err) }, 'shard read repair failed')
    }
  }
}

/**
 * Encodes a block that was verified against its CID and writes shards `targets[].index` to
 * their nodes: rebuilt shards always come from the verified block, never from other shards
 * directly, so a damaged shard can never be copied into a new one.
 */
export async function writeShardsOf(
  cid: CID,
  block: Uint8Array,
  k: number,
  m: number,
  targets: ReadonlyArray<{ node: NodeHandle; index: number }>,
  cfg: { rpcTimeoutMs: number; logger: Logger; throttle?: (bytes: number) => Promise<void> },
): Promise<void> {
  const data = await encodeShards(block, k, m)
  await cfg.throttle?.(targets.length * (data[0] as Uint8Array).byteLength)
  await Promise.all(
    targets.map(({ node, index }) =>
      writeShard(
        node,
        cid,
        index,
        encodeShard({ cid, blockSize: block.byteLength, k, m, index }, data[index] as Uint8Array),
        cfg,
      ),
    ),
  )
}

/**
 * Writes shard `index` (encoded, with its header) to one node, its owner (repair, read repair,
 * handoff); resolves once it is durable.
 */
export async function writeShard(
  node: NodeHandle,
  cid: CID,
  index: number,
  shard: Uint8Array,
  cfg: { rpcTimeoutMs: number; logger: Logger },
): Promise<void> {
  const session = new WriteSession({
    nodes: [node],
    replication: 1,
    writeQuorum: 1,
    ackTimeoutMs: cfg.rpcTimeoutMs,
    maxInflightPerNode: 1,
    logger: cfg.logger,
  })
  try {
    await session.sendTo(node, index, (seq) => encodePutShardRequest(seq, cid.bytes, shard))
  } finally {
    await session.close()
  }
}
