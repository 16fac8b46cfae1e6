import { type Durability, formatDurability, parseDurability } from './erasure/policy.js'
import { InvalidArgumentError } from './errors.js'

/**
 * Parses the durability option as every API spells it (HTTP `durability=`, the gRPC Add and Pin
 * options, the CLI's `--durability`): `replicate:R` or `ec:K+M` (core's policy parser).
 * Empty or absent: undefined, the cluster default. With `nodes`, a policy needing more storage
 * nodes than that (R copies, K+M shards) is refused; writes check again against the membership
 * of the moment their session starts.
 */
export function parseDurabilityOption(value: string | undefined, nodes?: number): Durability | undefined {
  if (value === undefined || value === '') return undefined
  const d = parseDurability(value)
  if (nodes === undefined) return d
  if (d.kind === 'replicate' && d.copies > nodes) {
    throw new InvalidArgumentError(`durability=replicate:R needs 1 <= R <= ${nodes} (the storage nodes)`)
  }
  if (d.kind === 'ec' && d.k + d.m > nodes) {
    throw new InvalidArgumentError(
      `durability=${formatDurability(d)} needs ${d.k + d.m} storage nodes (one per shard); the cluster has ${nodes}`,
    )
  }
  return d
}

/** The canonical text of an option, as recorded with pins ("" = the cluster default). */
export function formatDurabilityOption(d: Durability | undefined): string {
  return d === undefined ? '' : formatDurability(d)
}
