/** Kubo's `ipfs add` chunk size: the same bytes must give the same CID as Kubo. */
export const UNIXFS_CHUNK_SIZE = 262_144

/** Kubo's balanced-layout fan-out (go-unixfs helpers.DefaultLinksPerBlock). */
export const UNIXFS_MAX_LINKS = 174

/**
 * Largest block a node accepts. Bitswap refuses blocks over 2 MiB and Kubo's own limit is
 * 1 MiB for `block put`; 2 MiB keeps every block that IPFS tools exchange.
 */
export const MAX_BLOCK_BYTES = 2 * 1024 * 1024

/** gRPC message ceiling: one block plus its CID and framing, with headroom. */
export const MAX_GRPC_MESSAGE_BYTES = 4 * 1024 * 1024

/** Default replication factor and write quorum (a majority of R). */
export const DEFAULT_REPLICATION = 3

export const VERSION = '0.1.0'
