import { z } from 'zod'
import { DEFAULT_REPLICATION } from '../constants.js'
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
  /** Other storage nodes' gRPC addresses, comma-separated host:port (may include this one). */
  MYCEL_PEERS: peerList.default([]),
  /** Failure-domain label. */
  MYCEL_ZONE: z.string().min(1).default('default'),
  /** Capacity offered, in bytes; 0 means unlimited (bounded by the disk). */
  MYCEL_CAPACITY_BYTES: nonNegativeInt.default(0),
  /** Sync the RocksDB WAL before acknowledging writes. Only tests of raw speed turn it off. */
  MYCEL_SYNC_WRITES: boolFlag.default(true),
  /** How long shutdown waits for in-flight writes before closing the store. */
  MYCEL_SHUTDOWN_TIMEOUT_MS: positiveInt.default(20_000),
  MYCEL_LOG_LEVEL: logLevel,
  ...tlsEnv,
  ...nodeLimitsEnv,
})
export const nodeEnvSchema = nodeEnvShape.superRefine(checkTlsEnv)
export type NodeEnv = z.infer<typeof nodeEnvSchema>

/** Gateway settings. */
const gatewayEnvShape = z.object({
  /** HTTP listener for /ipfs, /api/v0, /mycel/v1, /metrics, /healthz, /readyz. */
  MYCEL_GATEWAY_LISTEN: hostPort.default('127.0.0.1:8080'),
  /** Second listener for the Kubo RPC on Kubo's default port; "off" disables it. */
  MYCEL_RPC_LISTEN: z.union([hostPort, z.literal('off')]).default('127.0.0.1:5001'),
  /** Storage nodes' gRPC addresses, comma-separated host:port. */
  MYCEL_PEERS: z
    .string({ message: 'required: comma-separated host:port of the storage nodes' })
    .pipe(peerList)
    .pipe(z.array(hostPort).min(1, 'at least one peer is required')),
  /** Copies kept of every block. */
  MYCEL_REPLICATION: positiveInt.max(16).default(DEFAULT_REPLICATION),
  /** Copies that must be durable before a write is acknowledged; default a majority of R. */
  MYCEL_WRITE_QUORUM: positiveInt.optional(),
  /** Deadline of one block operation on one node. */
  MYCEL_RPC_TIMEOUT_MS: positiveInt.default(10_000),
  /** Largest accepted upload body, in bytes. */
  MYCEL_MAX_UPLOAD_BYTES: positiveInt.default(64 * 1024 ** 3),
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
    if (cfg.MYCEL_WRITE_QUORUM !== undefined && cfg.MYCEL_WRITE_QUORUM > cfg.MYCEL_REPLICATION) {
      ctx.addIssue({
        code: 'custom',
        path: ['MYCEL_WRITE_QUORUM'],
        message: `must not exceed MYCEL_REPLICATION (${cfg.MYCEL_REPLICATION})`,
      })
    }
  })
  .transform((cfg) => ({
    ...cfg,
    MYCEL_WRITE_QUORUM: cfg.MYCEL_WRITE_QUORUM ?? Math.floor(cfg.MYCEL_REPLICATION / 2) + 1,
  }))
export type GatewayEnv = z.infer<typeof gatewayEnvSchema>

export const loadNodeEnv = (env: NodeJS.ProcessEnv = process.env) =>
  parseEnv(nodeEnvSchema, Object.keys(nodeEnvShape.shape), env)
export const loadGatewayEnv = (env: NodeJS.ProcessEnv = process.env) =>
  parseEnv(gatewayEnvSchema, Object.keys(gatewayEnvShape.shape), env)
