import { type ServerDuplexStream, type ServerUnaryCall, type sendUnaryData, status } from '@grpc/grpc-js'
import {
  BlockNotFoundError,
  type CID,
  type DurabilityPolicy,
  decodeCid,
  isMycelError,
  type Logger,
  StoreUnavailableError,
  VERSION,
} from '@mycel/core'
import {
  type BlockServiceServer,
  type DeleteBlockRequest,
  type DeleteBlockResponse,
  type Durability,
  fromProtoDurability,
  type GetBlockRequest,
  type GetBlockResponse,
  type GetNodeStatsResponse,
  type HasBlocksRequest,
  type HasBlocksResponse,
  type ListBlocksRequest,
  type ListBlocksResponse,
  type PutBlocksRequest,
  type PutBlocksResponse,
  toGrpcError,
  toProtoDurability,
} from '@mycel/proto'
import type { NodeMetrics } from '../admin/metrics.js'
import type { BlockRecord, BlockStore } from '../block-store/block-store.js'
import type { ShardStore } from '../shard-store/shard-store.js'

export interface BlockServiceComponents {
  store: BlockStore
  logger: Logger
  metrics: NodeMetrics
  identity: { nodeId: string; zone: string; capacityBytes: number }
  /** Erasure-coded shards held beside the blocks (PutBlocks `shard`, GetBlock `accept_shard`). */
  shards?: ShardStore
  /** The record of blocks written without one (MYCEL_REPLICATION). */
  defaultPolicy: DurabilityPolicy
  /** Fields other components add to GetNodeStats (repair, scrub, membership...). */
  extraStats?: () => Partial<GetNodeStatsResponse>
}

/** ListBlocks page size when the request leaves it 0, and its ceiling. */
const DEFAULT_LIST_LIMIT = 1024
const MAX_LIST_LIMIT = 4096

function durabilityOf(record: BlockRecord | undefined, fallback: DurabilityPolicy): Durability {
  return record === undefined ? {} : toProtoDurability(record.policy ?? fallback)
}

/**
 * Blocks a PutBlocks stream may have in flight before the node stops reading from it; with 256 KiB
 * chunks that is 16 MiB per stream, and it bounds memory whatever the sender does.
 */
const MAX_INFLIGHT_PUTS = 64

/** Runs unary handlers: RPC duration metrics, errors mapped through the error table. */
export type UnaryRunner = <Req, Res>(
  method: string,
  call: ServerUnaryCall<Req, Res>,
  callback: sendUnaryData<Res>,
  run: (req: Req) => Promise<Res>,
) => Promise<void>

export function unaryRunner(metrics: NodeMetrics, log: Logger): UnaryRunner {
  return async (method, call, callback, run) => {
    const end = metrics.rpcDuration.startTimer({ method })
    try {
      const res = await run(call.request)
      end({ code: 'OK' })
      callback(null, res)
    } catch (err) {
      const grpcErr = toGrpcError(err)
      end({ code: status[grpcErr.code ?? status.INTERNAL] ?? 'UNKNOWN' })
      if (!isMycelError(err)) log.error({ err, method }, 'unexpected error')
      callback(grpcErr)
    }
  }
}

/** The internal BlockService, on raw grpc-js handlers so that streams keep backpressure. */
export function createBlockService(c: BlockServiceComponents): BlockServiceServer {
  const log = c.logger.child({ component: 'node:block-service' })
  const unary = unaryRunner(c.metrics, log)

  async function putShard(cid: CID, shard: Uint8Array): Promise<void> {
    if (c.shards === undefined) throw new StoreUnavailableError('this node keeps no shards')
    await c.shards.put(cid, shard)
  }

  /** A verified shard of the block, `preferred` if held; undefined when none is held. */
  async function oneShard(cid: CID, preferred: number): Promise<Uint8Array | undefined> {
    if (c.shards === undefined) return undefined
    const { shards } = await c.shards.get(cid)
    return (shards.find((s) => s.index === preferred) ?? shards[0])?.bytes
  }

  return {
    putBlocks(call: ServerDuplexStream<PutBlocksRequest, PutBlocksResponse>) {
      let inflight = 0
      let ended = false
      let paused = false
      const finishIfDone = () => {
        if (ended && inflight === 0) call.end()
      }
      call.on('data', (req: PutBlocksRequest) => {
        inflight++
        if (inflight >= MAX_INFLIGHT_PUTS && !paused) {
          paused = true
          call.pause()
        }
        const end = c.metrics.rpcDuration.startTimer({ method: 'PutBlocks' })
        void (async (): Promise<PutBlocksResponse> => {
          try {
            const cid = decodeCid(req.cid)
            // Read before put(): the store may take the buffer.
            const size = req.data.byteLength + req.shard.byteLength
            if (req.shard.byteLength > 0) await putShard(cid, req.shard)
            else await c.store.put(cid, req.data, fromProtoDurability(req.durability) ?? c.defaultPolicy)
            c.metrics.bytesIn.inc(size)
            end({ code: 'OK' })
            return { seq: req.seq, errorCode: '', errorMessage: '' }
          } catch (err) {
            // The same code names as unary calls: the gRPC status the error maps to.
            end({ code: status[toGrpcError(err).code ?? status.INTERNAL] ?? 'UNKNOWN' })
            if (!isMycelError(err)) log.error({ err }, 'unexpected error in PutBlocks')
            return {
              seq: req.seq,
              errorCode: isMycelError(err) ? err.code : 'INTERNAL',
              errorMessage: err instanceof Error ? err.message : String(err),
            }
          }
        })().then((res) => {
          inflight--
          if (!call.cancelled && !call.destroyed) call.write(res)
          if (paused && inflight < MAX_INFLIGHT_PUTS / 2) {
            paused = false
            call.resume()
          }
          finishIfDone()
        })
      })
      call.on('end', () => {
        ended = true
        finishIfDone()
      })
      call.on('error', (err) => log.debug({ err }, 'PutBlocks stream error'))
    },

    getBlock(
      call: ServerUnaryCall<GetBlockRequest, GetBlockResponse>,
      callback: sendUnaryData<GetBlockResponse>,
    ) {
      void unary('GetBlock', call, callback, async (req) => {
        const cid = decodeCid(req.cid)
        let data: Uint8Array
        try {
          data = await c.store.get(cid)
        } catch (err) {
          if (!(err instanceof BlockNotFoundError) || !req.acceptShard) throw err
          const shard = await oneShard(cid, req.shardIndex)
          if (shard === undefined) throw err
          c.metrics.bytesOut.inc(shard.byteLength)
          return {
            data: Buffer.alloc(0),
            shard: Buffer.from(shard.buffer, shard.byteOffset, shard.byteLength),
          }
        }
        const [record] = await c.store.records([cid])
        c.metrics.bytesOut.inc(data.byteLength)
        return {
          data: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
          durability: durabilityOf(record, c.defaultPolicy),
          shard: Buffer.alloc(0),
        }
      })
    },

    hasBlocks(
      call: ServerUnaryCall<HasBlocksRequest, HasBlocksResponse>,
      callback: sendUnaryData<HasBlocksResponse>,
    ) {
      void unary('HasBlocks', call, callback, async (req) => {
        const records = await c.store.records(req.cids.map(decodeCid))
        return {
          has: records.map((r) => r !== undefined),
          durability: records.map((r) => durabilityOf(r, c.defaultPolicy)),
        }
      })
    },

    listBlocks(
      call: ServerUnaryCall<ListBlocksRequest, ListBlocksResponse>,
      callback: sendUnaryData<ListBlocksResponse>,
    ) {
      void unary('ListBlocks', call, callback, async (req) => {
        const limit = Math.min(req.limit === 0 ? DEFAULT_LIST_LIMIT : req.limit, MAX_LIST_LIMIT)
        // One record more than asked tells whether the listing is done without another call.
        const records = await c.store.list({ after: req.startAfter, limit: limit + 1 })
        return {
          blocks: records.slice(0, limit).map((r) => ({
            multihash: Buffer.from(r.key),
            size: r.size,
            durability: durabilityOf(r, c.defaultPolicy),
          })),
          done: records.length <= limit,
        }
      })
    },

    deleteBlock(
      call: ServerUnaryCall<DeleteBlockRequest, DeleteBlockResponse>,
      callback: sendUnaryData<DeleteBlockResponse>,
    ) {
      void unary('DeleteBlock', call, callback, async (req) => ({
        existed: await c.store.delete(decodeCid(req.cid)),
      }))
    },

    getNodeStats(call, callback) {
      void unary('GetNodeStats', call, callback, async (): Promise<GetNodeStatsResponse> => {
        const s = c.store.stats()
        const sh = c.shards?.stats() ?? { shards: 0, bytes: 0 }
        return {
          nodeId: c.identity.nodeId,
          zone: c.identity.zone,
          blocks: BigInt(s.blocks),
          blockBytes: BigInt(s.bytes),
          capacityBytes: BigInt(c.identity.capacityBytes),
          version: VERSION,
          shards: BigInt(sh.shards),
          shardBytes: BigInt(sh.bytes),
          ...c.extraStats?.(),
        }
      })
    },
  }
}
