// @mycel/sdk: a client of Mycel's public gRPC API (proto/mycel/v1/api.proto) with failover
// between nodes, and helpers to add and fetch local files and trees.
export { MycelError, type MycelErrorCode } from '@mycel/core'
export { RemoteMycelError } from '@mycel/proto'
export * from './client.js'
export * from './fs.js'
