import { InvalidArgumentError } from './errors.js'

/** Per-content durability; only replication exists until erasure coding lands. */
export interface Durability {
  /** Copies of every block; absent means the cluster default. */
  replication?: number
}

/**
 * Parses a durability policy as every API spells it (HTTP `durability=`, the gRPC Add and Pin
 * options, the CLI's `--durability`): `replicate:R` with 1 <= R <= `maxReplication` (the storage
 * nodes), or `ec:K+M`, which is refused until erasure coding lands. Empty or absent: the default.
 */
export function parseDurability(value: string | undefined, maxReplication: number): Durability {
  if (value === undefined || value === '') return {}
  const rep = /^replicate:(\d+)$/.exec(value)
  if (rep !== null) {
    const r = Number(rep[1])
    if (r < 1 || r > maxReplication) {
      throw new InvalidArgumentError(
        `durability=replicate:R needs 1 <= R <= ${maxReplication} (the storage nodes)`,
      )
    }
    return { replication: r }
  }
  // An unencoded '+' in a query string arrives as a space (curl users type ec:4+2 as is).
  if (/^ec:\d+[+ ]\d+$/.test(value)) {
    throw new InvalidArgumentError(
      'durability=ec:K+M: erasure coding is not available in this version; use replicate:R',
    )
  }
  throw new InvalidArgumentError(`durability must be replicate:R or ec:K+M (got "${value}")`)
}

/** The canonical text of a policy, as recorded with pins ("" = the cluster default). */
export function formatDurability(d: Durability): string {
  return d.replication === undefined ? '' : `replicate:${d.replication}`
}
