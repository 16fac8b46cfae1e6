export * from './durability.js'
export * from './error-map.js'
export * from './gen/mycel/v1/api.js'
export * from './gen/mycel/v1/block.js'
// ts-proto emits these helpers in every generated file; one copy is exported.
export {
  type DeepPartial,
  type Exact,
  type MessageFns,
  protobufFileName,
  protobufPackage,
} from './gen/mycel/v1/block.js'
// Named, not `export *`: every generated file also exports protobufPackage, DeepPartial, etc.
export {
  GetMembershipRequest,
  GetMembershipResponse,
  MemberRecord,
  MemberState,
  MembershipServiceClient,
  type MembershipServiceServer,
  MembershipServiceService,
  PingReqRequest,
  PingReqResponse,
  PingRequest,
  PingResponse,
  SyncRequest,
  SyncResponse,
  WatchMembershipRequest,
  WatchMembershipResponse,
} from './gen/mycel/v1/membership.js'
export * from './gen/mycel/v1/pin.js'
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
