import { type DurabilityPolicy, replicate } from '@mycel/core'
import { Durability } from './gen/mycel/v1/block.js'

/** The wire form of a durability policy. */
export function toProtoDurability(policy: DurabilityPolicy): Durability {
  return { scheme: { $case: 'replicate', value: { copies: policy.copies } } }
}

/** The policy a message carries, or undefined when it carries none (or none this version knows). */
export function fromProtoDurability(d: Durability | undefined): DurabilityPolicy | undefined {
  if (d?.scheme?.$case === 'replicate' && d.scheme.value.copies > 0) return replicate(d.scheme.value.copies)
  return undefined
}

/** The encoded Durability message, for hand-encoded PutBlocks requests. */
export function encodeDurability(policy: DurabilityPolicy): Uint8Array {
  return Durability.encode(toProtoDurability(policy)).finish()
}
