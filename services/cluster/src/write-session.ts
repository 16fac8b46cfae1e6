import type { ClientDuplexStream } from '@grpc/grpc-js'
import {
  blockKey,
  type CID,
  type DurabilityPolicy,
  isRoutable,
  type Logger,
  placeCopies,
  type QuorumFailure,
  QuorumNotReachedError,
  UpstreamTimeoutError,
  UpstreamUnavailableError,
} from '@mycel/core'
import { encodeDurability, fromGrpcError, type PutBlocksRequest, type PutBlocksResponse } from '@mycel/proto'
import { activeSpan, endSpan, recording, type Span, tracer, withSpan } from '@mycel/telemetry'
import type { ClusterWriteMetrics } from './cluster-blockstore.js'
import { encodePutBlocksRequest, type NodeHandle } from './node-clients.js'

export interface WriteSessionConfig {
  nodes: readonly NodeHandle[]
  /** Copies to write of every block. */
  replication: number
  /** Copies that must be durable before a block counts as written. */
  writeQuorum: number
  /**
   * The durability record every node stores with the blocks (the upload's requested policy,
   * even when fewer nodes exist now: repair completes it when nodes join). Absent: node default.
   */
  durability?: DurabilityPolicy
  /** How long a node may take to acknowledge one block before it is given up for this session. */
  ackTimeoutMs: number
  /** Blocks in flight on one node's stream; bounds the memory an upload holds per node. */
  maxInflightPerNode: number
  logger: Logger
  /** The span of the operation the session writes for (placement events go there). */
  span?: Span | undefined
  metrics?: ClusterWriteMetrics
}

interface PendingAck {
  resolve: () => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

/**
 * One PutBlocks stream to one node for the length of an upload. Blocks are acknowledged one by
 * one after the node's WAL sync; a node that errors or stops acknowledging is failed for the
 * rest of the session, and its unacknowledged blocks go to other nodes.
 */
class NodeWriteStream {
  failure: Error | undefined
  private readonly call: ClientDuplexStream<PutBlocksRequest, PutBlocksResponse>
  /** `mycel.write.stream`: one per node and upload, parent of the PutBlocks call's span. */
  private readonly span: Span
  private blocksSent = 0
  private bytesSent = 0
  private blocksAcked = 0
  private readonly pending = new Map<bigint, PendingAck>()
  private readonly slotWaiters: Array<() => void> = []
  private readonly closed: Promise<void>

  constructor(
    readonly node: NodeHandle,
    private readonly cfg: WriteSessionConfig,
  ) {
    this.span = tracer.startSpan('mycel.write.stream', {
      attributes: { 'mycel.node.address': node.address, 'mycel.node.id': node.id },
    })
    // No call deadline: an upload may stream for hours. Liveness comes from per-block ack
    // timeouts and gRPC keepalive instead.
    this.call = withSpan(this.span, () => node.client.putBlocks())
    this.call.on('data', (res: PutBlocksResponse) => this.onAck(res))
    this.closed = new Promise<void>((resolve) => {
      this.call.on('error', (err) => {
        this.fail(fromGrpcError(err))
        resolve()
      })
      this.call.on('end', () => {
        if (this.pending.size > 0)
          this.fail(new UpstreamUnavailableError(`${node.address} closed the stream early`))
        resolve()
      })
    }).then(() => {
      this.span.setAttributes({
        'mycel.blocks.sent': this.blocksSent,
        'mycel.blocks.acked': this.blocksAcked,
        'mycel.bytes.sent': this.bytesSent,
      })
      endSpan(this.span, this.failure)
    })
  }

  /** Sends one block, `encoded` by encodePutBlocksRequest with a `seq` unique in the session. */
  async put(seq: bigint, encoded: Buffer): Promise<void> {
    while (this.failure === undefined && this.pending.size >= this.cfg.maxInflightPerNode) {
      await new Promise<void>((resolve) => this.slotWaiters.push(resolve))
    }
    if (this.failure !== undefined) throw this.failure
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(
          new UpstreamTimeoutError(
            `${this.node.address} did not acknowledge a block within ${this.cfg.ackTimeoutMs} ms`,
          ),
        )
      }, this.cfg.ackTimeoutMs)
      this.pending.set(seq, { resolve, reject, timer })
      this.blocksSent++
      this.bytesSent += encoded.byteLength
      // The client's serializer passes pre-encoded requests through (see node-clients.ts).
      this.call.write(encoded as unknown as PutBlocksRequest)
    })
  }

  /** Half-closes the stream once every block is acknowledged or failed. */
  async end(): Promise<void> {
    if (this.failure === undefined) this.call.end()
    await this.closed
  }

  cancel(reason: Error): void {
    this.fail(reason)
  }

  private onAck(res: PutBlocksResponse): void {
    const p = this.pending.get(res.seq)
    if (p === undefined) return
    this.pending.delete(res.seq)
    clearTimeout(p.timer)
    this.slotWaiters.shift()?.()
    if (res.errorCode === '') {
      this.blocksAcked++
      p.resolve()
    } else p.reject(new Error(`${res.errorCode}: ${res.errorMessage}`))
  }

  private fail(err: Error): void {
    if (this.failure !== undefined) return
    this.failure = err
    this.cfg.logger.warn({ peer: this.node.address, err: err.message }, 'node failed during upload')
    // The session's span shows where placement moved away from this node.
    recording(this.cfg.span)?.addEvent('mycel.placement.node_failed', {
      'mycel.node.address': this.node.address,
      'mycel.error': err.message,
    })
    for (const p of this.pending.values()) {
      clearTimeout(p.timer)
      p.reject(err)
    }
    this.pending.clear()
    for (const wake of this.slotWaiters.splice(0)) wake()
    this.call.cancel()
  }
}

/** What an upload writes its blocks through: a WriteSession, or an ErasureWriteSession around one. */
export interface BlockWriter {
  /** Resolves once the block is written at its write quorum. */
  put(cid: CID, bytes: Uint8Array): Promise<void>
  /** Waits for every copy or shard in flight, then closes the streams. */
  close(): Promise<void>
  abort(reason: Error): void
  readonly blocksWritten: number
  readonly bytesWritten: number
}

/**
 * The write side of one upload. Each block goes to the first R nodes of its placement; when a
 * node fails, the next node in rank order takes its copy. A block is written once W copies are
 * durable (QuorumNotReachedError otherwise); `close()` then waits until every copy has settled.
 */
export class WriteSession implements BlockWriter {
  private readonly streams = new Map<string, NodeWriteStream>()
  private readonly settling = new Set<Promise<unknown>>()
  private seq = 0n
  private readonly durability: Uint8Array | undefined
  blocksWritten = 0
  bytesWritten = 0

  constructor(private readonly cfg: WriteSessionConfig) {
    // A quorum of zero would acknowledge blocks that no node holds.
    if (!(cfg.writeQuorum >= 1 && cfg.writeQuorum <= cfg.replication)) {
      throw new RangeError(`write quorum ${cfg.writeQuorum} must be between 1 and R=${cfg.replication}`)
    }
    cfg.span ??= activeSpan()
    this.durability = cfg.durability && encodeDurability(cfg.durability)
  }

  /** Writes one block; `durability` overrides the session's record for this block. */
  put(cid: CID, bytes: Uint8Array, durability?: DurabilityPolicy): Promise<void> {
    const order = placeCopies(blockKey(cid), this.cfg.nodes, this.cfg.replication)
    const { replication, writeQuorum } = this.cfg
    const seq = ++this.seq
    const record = durability === undefined ? this.durability : encodeDurability(durability)
    const encoded = encodePutBlocksRequest(seq, cid.bytes, bytes, record)
    return new Promise<void>((resolve, reject) => {
      let acked = 0
      let active = 0
      let next = 0
      let settled = false
      const failures: QuorumFailure[] = []
      const check = () => {
        if (settled) return
        if (acked >= writeQuorum) {
          settled = true
          this.cfg.metrics?.blocksWritten?.inc()
          this.blocksWritten++
          this.bytesWritten += bytes.byteLength
          resolve()
        } else if (active === 0) {
          settled = true
          reject(new QuorumNotReachedError(writeQuorum, acked, failures))
        }
      }
      const launch = () => {
        while (acked + active < replication && next < order.length) {
          const rank = next++
          const node = order[rank] as NodeHandle
          if (!isRoutable(node)) {
            // A member that left (a restart, a drain) keeps its place in the ranking, but its copy
            // goes to the next node in rank order (hinted handoff; repair moves it back later).
            failures.push({ node: node.address, error: `not routable (${node.state})` })
            continue
          }
          const stream = this.streamFor(node, rank)
          if (stream.failure !== undefined) {
            failures.push({ node: node.address, error: stream.failure.message })
            continue
          }
          active++
          const attempt = stream.put(seq, encoded).then(
            () => {
              active--
              acked++
              this.cfg.metrics?.blockCopiesWritten?.inc()
              check()
            },
            (err: Error) => {
              active--
              failures.push({ node: node.address, error: err.message })
              launch()
            },
          )
          this.settling.add(attempt)
          void attempt.finally(() => this.settling.delete(attempt))
        }
        check()
      }
      launch()
    })
  }

  /**
   * Sends one request built by `encode(seq)` to `node` on this session's stream to it, for
   * writers that choose nodes themselves (erasure-coded shards); resolves on the node's ack.
   * Rejects at once when the node already failed in this session. `rank` is the node's position
   * in the block's placement order (traces show it).
   */
  sendTo(node: NodeHandle, rank: number, encode: (seq: bigint) => Buffer): Promise<void> {
    const stream = this.streamFor(node, rank)
    if (stream.failure !== undefined) return Promise.reject(stream.failure)
    const seq = ++this.seq
    const attempt = stream.put(seq, encode(seq))
    const settled = attempt.catch(() => undefined)
    this.settling.add(settled)
    void settled.finally(() => this.settling.delete(settled))
    return attempt
  }

  /** Records the session's outcome on its span. */
  private describe(): void {
    recording(this.cfg.span)?.setAttributes({
      'mycel.replication': this.cfg.replication,
      'mycel.write_quorum': this.cfg.writeQuorum,
      'mycel.blocks.written': this.blocksWritten,
      'mycel.bytes.written': this.bytesWritten,
      'mycel.placement.nodes': this.streams.size,
    })
  }

  /** Waits for every copy in flight, then closes the streams. */
  async close(): Promise<void> {
    while (this.settling.size > 0) await Promise.allSettled([...this.settling])
    await Promise.all([...this.streams.values()].map((s) => s.end()))
    this.describe()
  }

  /** Abandons the upload: cancels every stream. Blocks already stored stay (they are valid). */
  abort(reason: Error): void {
    for (const s of this.streams.values()) s.cancel(reason)
  }

  private streamFor(node: NodeHandle, rank: number): NodeWriteStream {
    let s = this.streams.get(node.id)
    if (s === undefined) {
      // Placement, as a trace shows it: the first block that ranks each node among its targets.
      recording(this.cfg.span)?.addEvent('mycel.placement.node_added', {
        'mycel.node.address': node.address,
        'mycel.node.id': node.id,
        'mycel.placement.rank': rank,
        'mycel.session.blocks': this.blocksWritten,
      })
      s = new NodeWriteStream(node, this.cfg)
      this.streams.set(node.id, s)
    }
    return s
  }
}
