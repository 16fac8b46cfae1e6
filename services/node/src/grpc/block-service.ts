import { type ServerDuplexStream, type ServerUnaryCall, type sendUnaryData, status } from '@grpc/grpc-js'
import { type DurabilityPolicy, decodeCid, isMycelError, type Logger, VERSION } from '@mycel/core'
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

export interface BlockServiceComponents {
  store: BlockStore
  logger: Logger
  metrics: NodeMetrics
  identity: { nodeId: string; zone: string; capacityBytes: number }
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

/** The internal BlockService, on raw grpc-js handlers so that streams keep backpressure. */
export function createBlockService(c: BlockServiceComponents): BlockServiceServer {
  const log = c.logger.child({ component: 'node:block-service' })

  async function unary<Req, Res>(
    method: string,
    call: ServerUnaryCall<Req, Res>,
    callback: sendUnaryData<Res>,
    run: (req: Req) => Promise<Res>,
  ): Promise<void> {
    const end = c.metrics.rpcDuration.startTimer({ method })
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
            const size = req.data.byteLength // read before put(): the store may take the buffer
            await c.store.put(cid, req.data, fromProtoDurability(req.durability) ?? c.defaultPolicy)
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
        const data = await c.store.get(cid)
        const [record] = await c.store.records([cid])
        c.metrics.bytesOut.inc(data.byteLength)
        return {
          data: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
          durability: durabilityOf(record, c.defaultPolicy),
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
        return {
          nodeId: c.identity.nodeId,
          zone: c.identity.zone,
          blocks: BigInt(s.blocks),
          blockBytes: BigInt(s.bytes),
          capacityBytes: BigInt(c.identity.capacityBytes),
          version: VERSION,
          ...c.extraStats?.(),
        }
      })
    },
  }
}
