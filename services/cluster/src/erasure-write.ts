import {
  blockKey,
  type CID,
  type EcPolicy,
  ecWriteQuorum,
  encodeShard,
  encodeShards,
  isErasureCodable,
  isRoutable,
  placeCopies,
  type QuorumFailure,
  QuorumNotReachedError,
} from '@mycel/core'
import { encodePutShardRequest, type NodeHandle } from './node-clients.js'
import type { BlockWriter, WriteSession } from './write-session.js'

export interface ErasureWriteConfig {
  policy: EcPolicy
  /** Placement members at the start of the upload. */
  nodes: readonly NodeHandle[]
  /** Leaves smaller than this are replicated instead (DEFAULT_EC_MIN_BLOCK_BYTES). */
  minBlockBytes: number
}

/**
 * The write side of an ec:K+M upload. A large leaf block is encoded off the event loop into K+M
 * shards; shard i goes to the i-th node of the block's placement (placeCopies(key, nodes, K+M):
 * distinct zones first, the replicas' ranking). A shard whose node fails goes to the next node
 * ranked after the K+M, so no node holds two shards of a block. The block counts as written once
 * ecWriteQuorum(K, M) shards are durable; close() waits for the rest. DAG nodes and small blocks
 * go through `replicated`, a WriteSession of M+1 copies on the same per-node streams.
 */
export class ErasureWriteSession implements BlockWriter {
  private ecBlocks = 0
  private ecBytes = 0

  constructor(
    private readonly replicated: WriteSession,
    private readonly cfg: ErasureWriteConfig,
  ) {}

  get blocksWritten(): number {
    return this.replicated.blocksWritten + this.ecBlocks
  }

  get bytesWritten(): number {
    return this.replicated.bytesWritten + this.ecBytes
  }

  async put(cid: CID, bytes: Uint8Array): Promise<void> {
    if (!isErasureCodable(cid, bytes, this.cfg.minBlockBytes)) return this.replicated.put(cid, bytes)
    const { k, m } = this.cfg.policy
    const size = bytes.byteLength
    const data = await encodeShards(bytes, k, m)
    const shards = data.map((d, index) => encodeShard({ cid, blockSize: size, k, m, index }, d))
    await this.writeShards(cid, shards)
    this.ecBlocks++
    this.ecBytes += size
  }

  private writeShards(cid: CID, shards: Uint8Array[]): Promise<void> {
    const { k, m } = this.cfg.policy
    const needed = ecWriteQuorum(k, m)
    const order = placeCopies(blockKey(cid), this.cfg.nodes, k + m)
    return new Promise<void>((resolve, reject) => {
      let acked = 0
      let active = 0
      let spare = k + m
      let settled = false
      const failures: QuorumFailure[] = []
      // No verdict until every shard has been launched: a skipped first owner must not settle it.
      let launching = true
      const check = () => {
        if (settled || launching) return
        if (acked >= needed) {
          settled = true
          resolve()
        } else if (active === 0) {
          settled = true
          reject(new QuorumNotReachedError(needed, acked, failures, `shard write (ec:${k}+${m})`))
        }
      }
      const place = (index: number, node: NodeHandle) => {
        if (!isRoutable(node)) {
          // As for replicas: a member that left keeps its rank, and its shard goes to the next node
          // ranked after the K+M (repair moves it back once the owner returns).
          failures.push({ node: node.address, error: `shard ${index}: not routable (${node.state})` })
          const next = order[spare++]
          if (next !== undefined) place(index, next)
          else check()
          return
        }
        active++
        const shard = shards[index] as Uint8Array
        this.replicated
          .sendTo(node, order.indexOf(node), (seq) => encodePutShardRequest(seq, cid.bytes, shard))
          .then(
            () => {
              active--
              acked++
              check()
            },
            (err: Error) => {
              active--
              failures.push({ node: node.address, error: `shard ${index}: ${err.message}` })
              // Even after the quorum the shard still goes to a fallback: close() waits for it.
              const next = order[spare++]
              if (next !== undefined) place(index, next)
              else check()
            },
          )
      }
      for (const [index, node] of order.slice(0, k + m).entries()) place(index, node)
      launching = false
      check()
    })
  }

  close(): Promise<void> {
    return this.replicated.close()
  }

  abort(reason: Error): void {
    this.replicated.abort(reason)
  }
}
