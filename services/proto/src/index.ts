export * from './durability.js'
export * from './error-map.js'
export * from './gen/mycel/v1/block.js'
// Each generated file repeats ts-proto's helper types; only the messages and the service are exported.
export {
  DeleteShardsRequest,
  DeleteShardsResponse,
  GetShardsRequest,
  GetShardsResponse,
  ListShardsRequest,
  ListShardsResponse,
  ShardList,
  ShardRef,
  ShardServiceClient,
  type ShardServiceServer,
  ShardServiceService,
} from './gen/mycel/v1/shard.js'
