import { hostname, tmpdir } from 'node:os'
import { z } from 'zod'
import { checkWriteQuorum, coordinatorEnv, withWriteQuorum } from './cluster-access.js'
import { boolFlag, hostPort, logLevel, nonNegativeInt, parseEnv, positiveInt } from './env.js'
import {
  checkAuthEnv,
  checkTlsEnv,
  checkTrustedProxies,
  gatewayAuthEnv,
  gatewayLimitsEnv,
  nodeLimitsEnv,
  tlsEnv,
} from './security.js'

/** Comma-separated host:port list. */
const peerList = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p.length > 0),
  )
  .pipe(z.array(hostPort))

/** A DNS name, or name:port, whose A/AAAA records are seeds (e.g. a Kubernetes headless Service). */
const seedDns = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/, 'expected a DNS name or name:port')

/** Storage node settings. */
const nodeEnvShape = z.object({
  /** Where RocksDB and the node id live. */
  MYCEL_DATA_DIR: z.string().default('./.data/node-0'),
  /** Public and internal gRPC listener. */
  MYCEL_GRPC_LISTEN: hostPort.default('127.0.0.1:7070'),
  /** Admin HTTP listener: /metrics, /healthz, /readyz. */
  MYCEL_ADMIN_LISTEN: hostPort.default('127.0.0.1:9100'),
  /** Address peers and gateways dial to reach this node; default MYCEL_GRPC_LISTEN. */
  MYCEL_ADVERTISE_ADDRESS: hostPort.optional(),
  /** Seed nodes' gRPC addresses, comma-separated host:port (may include this one). */
  MYCEL_PEERS: peerList.default([]),
  /** Seeds from DNS: every A/AAAA record of this name (port: this node's gRPC port unless given). */
  MYCEL_SEED_DNS: seedDns.optional(),
  /** Failure-domain label. */
  MYCEL_ZONE: z.string().min(1).default('default'),
  /** Second failure-domain label (the machine); default the OS hostname. */
  MYCEL_HOST: z
    .string()
    .min(1)
    .default(() => hostname()),
  /** Relative capacity for placement: a node of weight 2 gets about twice the blocks. */
  MYCEL_WEIGHT: z.coerce.number().positive().max(1_000_000).default(1),
  /** Membership: one probe of one random member per interval (SWIM protocol period). */
  MYCEL_PROBE_INTERVAL_MS: positiveInt.default(1_000),
  /** Membership: a direct probe unanswered this long goes to indirect probes. */
  MYCEL_PROBE_TIMEOUT_MS: positiveInt.default(500),
  /** Membership: members asked to probe an unanswering member (SWIM's k). */
  MYCEL_INDIRECT_PROBES: nonNegativeInt.max(16).default(3),
  /** Membership: a member suspect (or left) this long is declared dead and repaired. */
  MYCEL_DEAD_AFTER_MS: positiveInt.default(300_000),
  /** Membership: push-pull full-state exchange with one random member every interval. */
  MYCEL_SYNC_INTERVAL_MS: positiveInt.default(10_000),
  /** Membership: no seed answered for this long: start alone, keep trying the seeds. */
  MYCEL_JOIN_TIMEOUT_MS: positiveInt.default(10_000),
  /** Capacity offered, in bytes; 0 means unlimited (bounded by the disk). */
  MYCEL_CAPACITY_BYTES: nonNegativeInt.default(0),
  /** Sync the RocksDB WAL before acknowledging writes. Only tests of raw speed turn it off. */
  MYCEL_SYNC_WRITES: boolFlag.default(true),
  /** How long shutdown waits for in-flight writes before closing the store. */
  MYCEL_SHUTDOWN_TIMEOUT_MS: positiveInt.default(20_000),
  /** Bytes per second repair and handoff may send to peers (token bucket). */
  MYCEL_REPAIR_RATE_BYTES: positiveInt.default(64 * 1024 ** 2),
  /** Blocks repair and handoff move at once. */
  MYCEL_REPAIR_CONCURRENCY: positiveInt.max(256).default(8),
  /** Time between repair passes over this node's blocks when nothing is pending. */
  MYCEL_REPAIR_INTERVAL_MS: positiveInt.default(10 * 60_000),
  /** Bytes per second the scrubber re-verifies; 0 turns scrubbing off. */
  MYCEL_SCRUB_RATE_BYTES: nonNegativeInt.default(16 * 1024 ** 2),
  /** Pause between two complete scrub passes. */
  MYCEL_SCRUB_INTERVAL_MS: positiveInt.default(7 * 24 * 3_600_000),
  MYCEL_LOG_LEVEL: logLevel,
  // The node coordinates public API requests (and pins) like a gateway does.
  ...coordinatorEnv,
  ...tlsEnv,
  ...nodeLimitsEnv,
  /** Hashed bearer tokens for the public gRPC API (see auth/tokens.ts); unset: no authentication. */
  MYCEL_API_TOKENS_FILE: z.string().min(1).optional(),
  /** How often the node reconciles its pin set with a random peer (anti-entropy). */
  MYCEL_PIN_SYNC_INTERVAL_MS: positiveInt.default(30_000),
})
export const nodeEnvSchema = nodeEnvShape
  .superRefine((cfg, ctx) => {
    if (cfg.MYCEL_PROBE_TIMEOUT_MS >= cfg.MYCEL_PROBE_INTERVAL_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['MYCEL_PROBE_TIMEOUT_MS'],
        message: `must be below MYCEL_PROBE_INTERVAL_MS (${cfg.MYCEL_PROBE_INTERVAL_MS}): indirect probes need the rest of the period`,
      })
    }
    if (cfg.MYCEL_DEAD_AFTER_MS < 2 * cfg.MYCEL_PROBE_INTERVAL_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['MYCEL_DEAD_AFTER_MS'],
        message: `must be at least two probe intervals (${2 * cfg.MYCEL_PROBE_INTERVAL_MS}) so a suspect can refute`,
      })
    }
  })
  .superRefine(checkWriteQuorum)
  .superRefine(checkTlsEnv)
  .transform(withWriteQuorum)
export type NodeEnv = z.infer<typeof nodeEnvSchema>

/** Gateway settings. */
const gatewayEnvShape = z.object({
  /** HTTP listener for /ipfs, /api/v0, /mycel/v1, /metrics, /healthz, /readyz. */
  MYCEL_GATEWAY_LISTEN: hostPort.default('127.0.0.1:8080'),
  /** Second listener for the Kubo RPC on Kubo's default port; "off" disables it. */
  MYCEL_RPC_LISTEN: z.union([hostPort, z.literal('off')]).default('127.0.0.1:5001'),
  /** Seed storage nodes' gRPC addresses, comma-separated host:port; the gateway learns the rest. */
  MYCEL_PEERS: peerList.default([]),
  /** Seeds from DNS: every A/AAAA record of this name (port 7070 unless given). */
  MYCEL_SEED_DNS: seedDns.optional(),
  ...coordinatorEnv,
  /** Where dag/import spools CARs while it verifies them (up to MYCEL_MAX_UPLOAD_BYTES per import). */
  MYCEL_TMP_DIR: z.string().min(1).default(tmpdir()),
  /** Token the gateway presents to the nodes' public API (pins), when they require tokens. */
  MYCEL_API_TOKEN: z.string().min(1).optional(),
  MYCEL_LOG_LEVEL: logLevel,
  ...tlsEnv,
  ...gatewayLimitsEnv,
  ...gatewayAuthEnv,
})
export const gatewayEnvSchema = gatewayEnvShape
  .superRefine(checkTlsEnv)
  .superRefine(checkAuthEnv)
  .superRefine(checkTrustedProxies)
  .superRefine((cfg, ctx) => {
    if (cfg.MYCEL_PEERS.length === 0 && cfg.MYCEL_SEED_DNS === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['MYCEL_PEERS'],
        message: 'required (or MYCEL_SEED_DNS): comma-separated host:port of one or more storage nodes',
      })
    }
  })
  .superRefine(checkWriteQuorum)
  .transform(withWriteQuorum)
export type GatewayEnv = z.infer<typeof gatewayEnvSchema>

/** The variables each role reads: deployment files (chart, compose) are checked against them. */
export const NODE_ENV_KEYS: readonly string[] = Object.keys(nodeEnvShape.shape)
export const GATEWAY_ENV_KEYS: readonly string[] = Object.keys(gatewayEnvShape.shape)

export const loadNodeEnv = (env: NodeJS.ProcessEnv = process.env) =>
  parseEnv(nodeEnvSchema, NODE_ENV_KEYS, env)
export const loadGatewayEnv = (env: NodeJS.ProcessEnv = process.env) =>
  parseEnv(gatewayEnvSchema, GATEWAY_ENV_KEYS, env)
