export type { BlockStore, BlockStoreStats } from './block-store/block-store.js'
export { MemoryBlockStore } from './block-store/memory-block-store.js'
export { RocksBlockStore } from './block-store/rocks-block-store.js'
export { runNode } from './main.js'
