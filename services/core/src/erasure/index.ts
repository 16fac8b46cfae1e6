export * from './codec.js'
export * from './policy.js'
export * from './shard.js'
