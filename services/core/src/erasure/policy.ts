import { decode as decodeDagPb } from '@ipld/dag-pb'
import { type CID, CODEC_DAG_PB, CODEC_RAW } from '../cid/cid.js'
import { type DurabilityPolicy, formatPolicy } from '../durability/policy.js'
import { InvalidArgumentError, StoreUnavailableError } from '../errors.js'

/**
 * How an upload (or a pin, or the cluster default) asks for its blocks to be protected:
 * `replicate:R` keeps R full copies on R nodes; `ec:K+M` splits a large leaf block into K data
 * shards and M Reed-Solomon parity shards on K+M nodes, any K of which rebuild it. Under `ec:K+M`,
 * small blocks and DAG nodes are replicated M+1 times, so every block of an upload survives the
 * same number (M) of lost nodes. The replicate case is a block's durability record
 * (durability/policy.ts); a coded block has no record of its own: each shard's header carries K+M.
 */
export type Durability = DurabilityPolicy | EcPolicy
export interface EcPolicy {
  kind: 'ec'
  /** Data shards. */
  k: number
  /** Parity shards. */
  m: number
}

/** The cluster default's extra choice: ec:4+2 when the cluster has enough nodes, else replication. */
export type DurabilitySetting = Durability | { kind: 'auto' }

/** Upper bounds: the codec's (@ronomon/reed-solomon MAX_K, MAX_M) and the shard header's byte fields. */
export const EC_MAX_DATA_SHARDS = 24
export const EC_MAX_PARITY_SHARDS = 6
export const MAX_REPLICAS = 16

/** What `auto` picks for large blocks once at least K+M nodes exist (the default). */
export const AUTO_EC: EcPolicy = { kind: 'ec', k: 4, m: 2 }

/**
 * Smallest block that is erasure-coded under an ec policy. Below it the shards get small enough
 * that K+M RPCs and headers cost more than the storage saved; replication is cheaper there.
 */
export const DEFAULT_EC_MIN_BLOCK_BYTES = 65_536

/**
 * Parses `replicate:R` or `ec:K+M` (also `ec:K M`: an unencoded '+' in a query string arrives as
 * a space). InvalidArgumentError names the rule that failed. `what` names the option in messages.
 */
export function parseDurability(text: string, what = 'durability'): Durability {
  const v = text.trim()
  const rep = /^replicate:(\d{1,3})$/.exec(v)
  if (rep !== null) {
    const copies = Number(rep[1])
    if (copies < 1 || copies > MAX_REPLICAS) {
      throw new InvalidArgumentError(`${what}=replicate:R needs 1 <= R <= ${MAX_REPLICAS} (got ${copies})`)
    }
    return { kind: 'replicate', copies }
  }
  const ec = /^ec:(\d{1,3})[+ ](\d{1,3})$/.exec(v)
  if (ec !== null) {
    const k = Number(ec[1])
    const m = Number(ec[2])
    if (k < 1 || k > EC_MAX_DATA_SHARDS) {
      throw new InvalidArgumentError(
        `${what}=ec:K+M needs 1 <= K <= ${EC_MAX_DATA_SHARDS} data shards (got K=${k})`,
      )
    }
    if (m < 1 || m > EC_MAX_PARITY_SHARDS) {
      throw new InvalidArgumentError(
        `${what}=ec:K+M needs 1 <= M <= ${EC_MAX_PARITY_SHARDS} parity shards (got M=${m})`,
      )
    }
    return { kind: 'ec', k, m }
  }
  throw new InvalidArgumentError(`${what} must be replicate:R or ec:K+M, e.g. ec:4+2 (got "${text}")`)
}

/** `auto`, `replicate:R` or `ec:K+M`: the cluster default (MYCEL_DEFAULT_DURABILITY). */
export function parseDurabilitySetting(text: string, what = 'durability'): DurabilitySetting {
  return text.trim() === 'auto' ? { kind: 'auto' } : parseDurability(text, what)
}

export function formatDurability(d: DurabilitySetting): string {
  switch (d.kind) {
    case 'replicate':
      return formatPolicy(d)
    case 'ec':
      return `ec:${d.k}+${d.m}`
    default:
      return 'auto'
  }
}

/**
 * Shards that must be durable before an erasure-coded block counts as written: K plus half the
 * parity, rounded up. Like a replication majority, an acknowledged block then survives
 * ceil(M/2) more lost nodes even if its other shards never land; with every node healthy all K+M
 * are written before the upload is answered.
 */
export function ecWriteQuorum(k: number, m: number): number {
  return k + Math.ceil(m / 2)
}

/** Copies of the blocks an ec:K+M upload replicates (DAG nodes, small blocks): M+1 survive M losses. */
export function ecReplicas(m: number): number {
  return m + 1
}

/**
 * The policy an upload gets: the request's, else the cluster default; `auto` becomes AUTO_EC when
 * the cluster has the nodes for it, else `replicate:replication`. A requested policy that needs
 * more nodes than placement has throws InvalidArgumentError; a default that does, StoreUnavailableError.
 */
export function resolveDurability(
  requested: Durability | undefined,
  fallback: DurabilitySetting,
  placeableNodes: number,
  replication: number,
): Durability {
  let d: DurabilitySetting = requested ?? fallback
  if (d.kind === 'auto') {
    d = placeableNodes >= AUTO_EC.k + AUTO_EC.m ? AUTO_EC : { kind: 'replicate', copies: replication }
  }
  if (d.kind === 'ec' && d.k + d.m > placeableNodes) {
    const why = `${formatDurability(d)} needs ${d.k + d.m} storage nodes (one per shard); the cluster has ${placeableNodes}`
    // A request asked for too much (400); a cluster default that cannot be met is the cluster's state (503).
    if (requested !== undefined) throw new InvalidArgumentError(`durability=${why}`)
    throw new StoreUnavailableError(`the default durability ${why}`)
  }
  if (d.kind === 'replicate' && d.copies > placeableNodes && requested !== undefined) {
    throw new InvalidArgumentError(
      `durability=replicate:R needs 1 <= R <= ${placeableNodes} (the storage nodes); got ${d.copies}`,
    )
  }
  return d
}

/**
 * Whether a block is erasure-coded under an ec policy: a leaf (raw, or dag-pb without links) of
 * at least `minBytes`. DAG nodes with links stay replicated: every read of a file walks them.
 */
export function isErasureCodable(cid: CID, bytes: Uint8Array, minBytes: number): boolean {
  if (bytes.byteLength < minBytes) return false
  if (cid.code === CODEC_RAW) return true
  if (cid.code !== CODEC_DAG_PB) return false
  try {
    return decodeDagPb(bytes).Links.length === 0
  } catch {
    return false
  }
}
