import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js'
import { decodeCid } from '@mycel/core'
import type {
  DeleteShardsRequest,
  DeleteShardsResponse,
  GetShardsRequest,
  GetShardsResponse,
  ListShardsRequest,
  ListShardsResponse,
  ShardServiceServer,
} from '@mycel/proto'
import type { ShardMetrics } from '../shard-store/shard-metrics.js'
import type { ShardStore } from '../shard-store/shard-store.js'
import type { UnaryRunner } from './block-service.js'

export interface ShardServiceComponents {
  shards: ShardStore
  metrics: ShardMetrics
  unary: UnaryRunner
}

/** The internal ShardService: verified shard reads, index listings for repair, handoff deletes. */
export function createShardService(c: ShardServiceComponents): ShardServiceServer {
  return {
    getShards(
      call: ServerUnaryCall<GetShardsRequest, GetShardsResponse>,
      callback: sendUnaryData<GetShardsResponse>,
    ) {
      void c.unary('GetShards', call, callback, async (req) => {
        const { shards, corrupt } = await c.shards.get(decodeCid(req.cid), {
          k: req.k,
          m: req.m,
          indices: req.indices,
        })
        c.metrics.served.inc(shards.length)
        return {
          shards: shards.map((s) => Buffer.from(s.bytes.buffer, s.bytes.byteOffset, s.bytes.byteLength)),
          corrupt,
        }
      })
    },

    listShards(
      call: ServerUnaryCall<ListShardsRequest, ListShardsResponse>,
      callback: sendUnaryData<ListShardsResponse>,
    ) {
      void c.unary('ListShards', call, callback, async (req) => ({
        blocks: (await c.shards.list(req.cids.map(decodeCid))).map((shards) => ({ shards })),
      }))
    },

    deleteShards(
      call: ServerUnaryCall<DeleteShardsRequest, DeleteShardsResponse>,
      callback: sendUnaryData<DeleteShardsResponse>,
    ) {
      void c.unary('DeleteShards', call, callback, async (req) => ({
        deleted: await c.shards.delete(decodeCid(req.cid), req.shards),
      }))
    },
  }
}
