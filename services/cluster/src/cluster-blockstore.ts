import { Metadata, status } from '@grpc/grpc-js'
import {
  BlockCorruptError,
  BlockNotFoundError,
  blockKey,
  blockMatches,
  type CID,
  DEFAULT_EC_MIN_BLOCK_BYTES,
  type Durability,
  type DurabilityPolicy,
  type DurabilitySetting,
  decodeShard,
  ecReplicas,
  ecWriteQuorum,
  HASH_IDENTITY,
  isAbortError,
  isRoutable,
  type Logger,
  placeCopies,
  QuorumNotReachedError,
  replicate,
  resolveDurability,
  type Shard,
  UpstreamUnavailableError,
} from '@mycel/core'
import { fromProtoDurability, mycelCodeOf } from '@mycel/proto'
import { ErasureReader, type ErasureReadMetrics } from './erasure-read.js'
import { ErasureWriteSession } from './erasure-write.js'
import { deadlineIn, isServiceError, type NodeClients, type NodeHandle } from './node-clients.js'
import { type BlockWriter, WriteSession } from './write-session.js'

export interface ClusterConfig {
  replication: number
  writeQuorum: number
  rpcTimeoutMs: number
  /** Blocks in flight per node on an upload stream. */
  maxInflightPerNode: number
  /** Policy of writes that name none (default replicate:`replication`). */
  defaultDurability?: DurabilitySetting
  /** Smallest leaf an ec policy erasure-codes (DEFAULT_EC_MIN_BLOCK_BYTES). */
  ecMinBlockBytes?: number
  /** How long an erasure-coded read waits for a data shard before asking for parity too. */
  ecHedgeMs?: number
}

/** Counters the cluster blockstore moves; the embedding service decides their names (prom-client fits). */
export interface ClusterReadMetrics extends Partial<ErasureReadMetrics> {
  blockFetches: { inc(labels: { result: 'ok' | 'corrupt' | 'unreachable' }): void }
  readRepairs: { inc(labels: { result: 'ok' | 'failed' }): void }
}

/** Counters write sessions move (optional: a process that only reads needs none). */
export interface ClusterWriteMetrics {
  /** Blocks that reached the write quorum. */
  blocksWritten?: { inc(): void }
  /** Copies acknowledged as durable by nodes. */
  blockCopiesWritten?: { inc(): void }
}

export interface AbortOptions {
  signal?: AbortSignal
}

/**
 * The cluster seen as one blockstore: reads walk a block's placement in rank order and verify
 * what they get; writes go through a WriteSession per upload. The shape fits what the UnixFS
 * importer and exporter need (put, get as a generator, has).
 */
export class ClusterBlockstore {
  private readonly log: Logger
  private readonly erasure: ErasureReader

  constructor(
    private readonly clients: NodeClients,
    readonly config: ClusterConfig,
    logger: Logger,
    private readonly metrics: ClusterReadMetrics & ClusterWriteMetrics,
  ) {
    this.log = logger.child({ component: 'cluster' })
    this.erasure = new ErasureReader({
      rpcTimeoutMs: config.rpcTimeoutMs,
      hedgeMs: config.ecHedgeMs ?? 250,
      logger: this.log,
      metrics,
    })
  }

  get nodes(): readonly NodeHandle[] {
    return this.clients.nodes
  }

  /**
   * A write session for one upload. `durability` is the request's policy (a number is
   * replicate:R, as before policies existed); without one the cluster default applies.
   * InvalidArgumentError when the cluster has too few nodes for the requested policy.
   */
  newWriteSession(durability?: number | Durability): BlockWriter {
    const nodes = this.clients.nodes
    const requested: Durability | undefined =
      typeof durability === 'number' ? replicate(durability) : durability
    if (nodes.length === 0) {
      // R and W would clamp to 0 and every block would count as written with no copy anywhere.
      const needed =
        requested === undefined
          ? this.config.writeQuorum
          : requested.kind === 'replicate'
            ? Math.floor(requested.copies / 2) + 1
            : ecWriteQuorum(requested.k, requested.m)
      throw new QuorumNotReachedError(needed, 0, [
        { node: 'membership', error: 'no storage node is known (no seed has answered)' },
      ])
    }
    // A bare number (the older API) may exceed the node count: its record keeps the requested R
    // so that repair completes the copies once nodes join. A policy is checked against it.
    const policy = resolveDurability(
      typeof durability === 'number' ? undefined : requested,
      requested ?? this.config.defaultDurability ?? replicate(this.config.replication),
      nodes.length,
      this.config.replication,
    )
    if (policy.kind === 'replicate')
      return this.replicatedSession(nodes, policy.copies, requested !== undefined)
    return new ErasureWriteSession(this.replicatedSession(nodes, ecReplicas(policy.m), true), {
      policy,
      nodes,
      minBlockBytes: this.config.ecMinBlockBytes ?? DEFAULT_EC_MIN_BLOCK_BYTES,
    })
  }

  /**
   * R copies per block, each carrying replicate:R as its durability record. W is the configured
   * quorum for the cluster's own R, else a majority of the copies that can be placed.
   */
  private replicatedSession(nodes: readonly NodeHandle[], copies: number, requested: boolean): WriteSession {
    const r = Math.min(copies, nodes.length)
    const own = !requested && copies === this.config.replication
    const w = own ? this.config.writeQuorum : Math.floor(r / 2) + 1
    return new WriteSession({
      nodes,
      replication: r,
      writeQuorum: Math.min(w, r),
      durability: replicate(copies),
      ackTimeoutMs: this.config.rpcTimeoutMs,
      maxInflightPerNode: this.config.maxInflightPerNode,
      logger: this.log,
      metrics: this.metrics,
    })
  }

  /** A blockstore for the importer: writes into `session`, reads from the cluster. */
  forSession(session: BlockWriter) {
    return {
      put: async (cid: CID, bytes: Uint8Array) => {
        await session.put(cid, bytes)
        return cid
      },
      get: (cid: CID, options?: AbortOptions) => this.get(cid, options),
      has: async () => false,
    }
  }

  async *get(cid: CID, options: AbortOptions = {}): AsyncGenerator<Uint8Array> {
    yield await this.getBlock(cid, options)
  }

  /**
   * Fetches a block from the first node of its placement that has a good copy. NOT_FOUND and
   * failures move on to the next node. "Not found" is only decided when fewer nodes were
   * unreachable than the write quorum (an acknowledged block has at least W copies, so one of
   * them would have answered); otherwise the answer is unknown and the error says so.
   */
  async getBlock(cid: CID, options: AbortOptions = {}): Promise<Uint8Array> {
    if (cid.multihash.code === HASH_IDENTITY) return cid.multihash.digest
    const placed = placeCopies(blockKey(cid), this.clients.nodes, this.config.replication)
    // Members that left are not asked (they are stopping or down) though they may hold the block,
    // so they count as unreachable. Suspects are asked after the others: they still hold their
    // copies, but may be slow or cut off, and each attempt could wait for the full deadline.
    const order = [
      ...placed.filter((n) => n.state === 'alive'),
      ...placed.filter((n) => n.state === 'suspect'),
    ]
    const unreachable: string[] = placed
      .filter((n) => !isRoutable(n))
      .map((n) => `${n.address}: not routable (${n.state})`)
    const corrupt: NodeHandle[] = []
    let erasure: { first: Shard; node: NodeHandle } | undefined
    for (const node of order) {
      options.signal?.throwIfAborted()
      try {
        const { data, durability, shard } = await this.fetchFrom(node, cid, options.signal)
        if (shard.byteLength > 0) {
          // The node holds a shard, not the block: the block is erasure-coded.
          const first = this.verifiedShard(cid, shard, node)
          if (first === undefined) {
            corrupt.push(node)
            continue
          }
          erasure = { first, node }
          break
        }
        if (!blockMatches(cid, data)) {
          // The node verifies before it serves, so this is damage in transit or a faulty peer.
          this.log.error({ cid: cid.toString(), peer: node.address }, 'block from node failed verification')
          corrupt.push(node)
          continue
        }
        if (corrupt.length > 0) this.readRepair(cid, data, durability, corrupt)
        this.metrics.blockFetches.inc({ result: 'ok' })
        return data
      } catch (err) {
        if (isAbortError(err) || options.signal?.aborted) throw err
        const code = isServiceError(err) ? err.code : undefined
        if (code === status.NOT_FOUND) continue
        if (mycelCodeOf(err) === 'BLOCK_CORRUPT' || code === status.DATA_LOSS) {
          this.metrics.blockFetches.inc({ result: 'corrupt' })
          corrupt.push(node)
          continue
        }
        unreachable.push(`${node.address}: ${isServiceError(err) ? err.details || err.message : String(err)}`)
        this.metrics.blockFetches.inc({ result: 'unreachable' })
      }
    }
    if (erasure !== undefined) {
      return this.erasure.read(cid, erasure.first, erasure.node, this.clients.nodes, options.signal)
    }
    if (unreachable.length >= this.config.writeQuorum) {
      throw new UpstreamUnavailableError(
        `block ${cid.toString()} could not be fetched: ${unreachable.length} of ${placed.length} nodes unreachable (${unreachable.join('; ')})`,
      )
    }
    if (corrupt.length > 0) throw new BlockCorruptError(cid.toString())
    throw new BlockNotFoundError(cid.toString())
  }

  /** The shard a node answered GetBlock with, if it verifies and belongs to `cid`. */
  private verifiedShard(cid: CID, bytes: Uint8Array, node: NodeHandle): Shard | undefined {
    try {
      // Header only: the reader checks the rebuilt block against its CID (and checksums on a mismatch).
      const shard = decodeShard(bytes, 'shard', false)
      if (Buffer.compare(shard.cid.multihash.bytes, cid.multihash.bytes) === 0) return shard
    } catch {
      // reported below
    }
    this.log.error({ cid: cid.toString(), peer: node.address }, 'shard from node failed verification')
    return undefined
  }

  /** GetBlock that also accepts a shard (the node holds shards of an erasure-coded block). */
  private fetchFrom(
    node: NodeHandle,
    cid: CID,
    signal?: AbortSignal,
  ): Promise<{ data: Uint8Array; durability: DurabilityPolicy | undefined; shard: Uint8Array }> {
    return new Promise((resolve, reject) => {
      const call = node.client.getBlock(
        { cid: Buffer.from(cid.bytes), acceptShard: true, shardIndex: 0 },
        new Metadata(),
        { deadline: deadlineIn(this.config.rpcTimeoutMs) },
        (err, res) => {
          signal?.removeEventListener('abort', onAbort)
          if (err) reject(err)
          else resolve({ data: res.data, durability: fromProtoDurability(res.durability), shard: res.shard })
        },
      )
      const onAbort = () => call.cancel()
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /**
   * Puts a good copy back on nodes whose copy failed verification (they dropped theirs), with the
   * durability record of the node that served the good copy.
   */
  private readRepair(
    cid: CID,
    data: Uint8Array,
    durability: DurabilityPolicy | undefined,
    nodes: NodeHandle[],
  ): void {
    const session = new WriteSession({
      nodes,
      replication: nodes.length,
      writeQuorum: nodes.length,
      durability,
      ackTimeoutMs: this.config.rpcTimeoutMs,
      maxInflightPerNode: 1,
      logger: this.log,
    })
    session
      .put(cid, data)
      .then(() => session.close())
      .then(
        () => {
          this.metrics.readRepairs.inc({ result: 'ok' })
          this.log.info(
            { cid: cid.toString(), peers: nodes.map((n) => n.address) },
            'read repair restored corrupt copies',
          )
        },
        (err: unknown) => {
          this.metrics.readRepairs.inc({ result: 'failed' })
          this.log.warn({ cid: cid.toString(), err: String(err) }, 'read repair failed')
        },
      )
  }
}
