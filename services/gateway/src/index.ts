export { ClusterBlockstore } from './cluster/cluster-blockstore.js'
export { parseRange } from './http/range.js'
export { runGateway } from './main.js'
