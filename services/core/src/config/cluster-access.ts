import { z } from 'zod'
import { DEFAULT_REPLICATION } from '../constants.js'
import { DEFAULT_EC_MIN_BLOCK_BYTES, parseDurabilitySetting } from '../erasure/policy.js'
import { positiveInt } from './env.js'

/** A durability policy: `auto`, `replicate:R` or `ec:K+M` (see erasure/policy.ts). */
const durabilitySetting = z.string().transform((text, ctx) => {
  try {
    return parseDurabilitySetting(text, 'policy')
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: err instanceof Error ? err.message : String(err) })
    return z.NEVER
  }
})

/**
 * Settings of a process that coordinates reads and writes across the nodes: the gateway, and every
 * node (it serves the public gRPC API). Shared by both schemas.
 */
export const coordinatorEnv = {
  /** Copies kept of every block. */
  MYCEL_REPLICATION: positiveInt.max(16).default(DEFAULT_REPLICATION),
  /** Copies that must be durable before a write is acknowledged; default a majority of R. */
  MYCEL_WRITE_QUORUM: positiveInt.optional(),
  /** Deadline of one block operation on one node. */
  MYCEL_RPC_TIMEOUT_MS: positiveInt.default(10_000),
  /** Largest accepted upload, in bytes. */
  MYCEL_MAX_UPLOAD_BYTES: positiveInt.default(64 * 1024 ** 3),
  /**
   * Policy of uploads that name none: `auto` (ec:4+2 for large blocks once 6 nodes exist, else
   * replicate:MYCEL_REPLICATION), `replicate:R` or `ec:K+M`.
   */
  MYCEL_DEFAULT_DURABILITY: durabilitySetting.prefault('auto'),
  /** Smallest leaf block an ec policy erasure-codes; smaller blocks are replicated M+1 times. */
  MYCEL_EC_MIN_BLOCK_BYTES: positiveInt.default(DEFAULT_EC_MIN_BLOCK_BYTES),
  /** How long an erasure-coded read waits for a data shard before also asking for a parity shard. */
  MYCEL_EC_HEDGE_MS: positiveInt.default(250),
}

interface QuorumEnv {
  MYCEL_REPLICATION: number
  MYCEL_WRITE_QUORUM?: number | undefined
}

/** superRefine rule: W <= R. */
export function checkWriteQuorum(cfg: QuorumEnv, ctx: z.RefinementCtx): void {
  if (cfg.MYCEL_WRITE_QUORUM !== undefined && cfg.MYCEL_WRITE_QUORUM > cfg.MYCEL_REPLICATION) {
    ctx.addIssue({
      code: 'custom',
      path: ['MYCEL_WRITE_QUORUM'],
      message: `must not exceed MYCEL_REPLICATION (${cfg.MYCEL_REPLICATION})`,
    })
  }
}

/** Fills in the default write quorum: a majority of R. */
export function withWriteQuorum<T extends QuorumEnv>(cfg: T): T & { MYCEL_WRITE_QUORUM: number } {
  return { ...cfg, MYCEL_WRITE_QUORUM: cfg.MYCEL_WRITE_QUORUM ?? Math.floor(cfg.MYCEL_REPLICATION / 2) + 1 }
}
