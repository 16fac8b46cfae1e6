// Access to the storage nodes as one cluster: node clients, placement-driven write sessions at the
// write quorum, the verifying cluster blockstore and the Kubo-identical UnixFS import over it.
// Used by the gateway and by nodes that coordinate requests themselves.
export * from './cluster-blockstore.js'
export * from './content-path.js'
export * from './dag-presence.js'
export * from './erasure-read.js'
export * from './erasure-repair.js'
export * from './erasure-write.js'
export * from './import.js'
export * from './ipld-links.js'
export * from './membership-codec.js'
export * from './node-clients.js'
export * from './remote-membership.js'
export * from './seeds.js'
export * from './tls.js'
export * from './write-session.js'
