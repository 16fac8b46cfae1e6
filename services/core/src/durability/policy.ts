import { InvalidArgumentError } from '../errors.js'

/**
 * How a block is protected: its durability record, stored with the block on every node that
 * holds it and carried by every write. A record always says replicate:R: an erasure-coded block
 * is stored as shards, each of whose headers records the code K+M (erasure/shard.ts), and the
 * upload-level choice between the two is `Durability` (erasure/policy.ts).
 */
export type DurabilityPolicy = { kind: 'replicate'; copies: number }

/** Largest replication factor a record can carry (one byte; far above any sane R). */
export const MAX_REPLICATION = 255

export function replicate(copies: number): DurabilityPolicy {
  if (!Number.isInteger(copies) || copies < 1 || copies > MAX_REPLICATION) {
    throw new InvalidArgumentError(`replication factor must be 1-${MAX_REPLICATION} (got ${copies})`)
  }
  return { kind: 'replicate', copies }
}

/** How many nodes hold data of a block under `policy` (copies, or shards once EC exists). */
export function placementWidth(policy: DurabilityPolicy): number {
  return policy.copies
}

/** `replicate:3`, the form users type (`durability=` query parameter, CLI `--durability`). */
export function formatPolicy(policy: DurabilityPolicy): string {
  return `replicate:${policy.copies}`
}

/**
 * The stronger of two policies, for one block stored under both (the same bytes uploaded with
 * different durability share one copy, which must satisfy the most demanding upload).
 */
export function strongerPolicy(a: DurabilityPolicy, b: DurabilityPolicy): DurabilityPolicy {
  return b.copies > a.copies ? b : a
}

export function samePolicy(a: DurabilityPolicy, b: DurabilityPolicy): boolean {
  return a.kind === b.kind && a.copies === b.copies
}

/** Record scheme bytes (the first byte of an encoded policy). */
const SCHEME_REPLICATE = 1

/** The compact form stored beside a block: [scheme][parameters...]; replicate is [1][R]. */
export function encodePolicy(policy: DurabilityPolicy): Uint8Array {
  return Uint8Array.of(SCHEME_REPLICATE, policy.copies)
}

/**
 * The policy of an encoded record, or undefined for an empty record (blocks written before
 * records existed: they follow the node's default). Throws on a scheme this version cannot read,
 * so a node never acts on a record it misunderstands.
 */
export function decodePolicy(bytes: Uint8Array): DurabilityPolicy | undefined {
  if (bytes.byteLength === 0) return undefined
  if (bytes[0] === SCHEME_REPLICATE && bytes.byteLength >= 2) return replicate(bytes[1] as number)
  throw new Error(`unknown durability record scheme ${bytes[0]} (${bytes.byteLength} bytes)`)
}
