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
export * from './gen/mycel/v1/pin.js'
