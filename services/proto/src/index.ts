export * from './durability.js'
export * from './error-map.js'
export * from './gen/mycel/v1/block.js'
