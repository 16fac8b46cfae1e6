import { z } from 'zod'
import type { TlsFilesConfig } from '../tls/cert-files.js'
import { positiveInt } from './env.js'

/**
 * Mutual TLS between cluster processes (nodes and gateways), shared by the node and gateway
 * schemas. All three files or none: with none, gRPC between processes is plaintext (make run).
 */
export const tlsEnv = {
  /** PEM certificate (chain) of this process, issued by the cluster CA. */
  MYCEL_TLS_CERT_FILE: z.string().optional(),
  /** PEM private key of that certificate. */
  MYCEL_TLS_KEY_FILE: z.string().optional(),
  /** PEM bundle of the cluster CA(s): peers must present a certificate issued by one of them. */
  MYCEL_TLS_CA_FILE: z.string().optional(),
  /**
   * Name checked in the certificate a node presents when this process dials it. Default: the
   * host of the address dialed (a DNS name or IP that must be in the certificate's SANs).
   */
  MYCEL_TLS_SERVER_NAME: z
    .string()
    .regex(/^[A-Za-z0-9.-]+$/, 'expected a DNS name')
    .optional(),
  /** How often the TLS files are re-read (changes are also noticed through file-system events). */
  MYCEL_TLS_RELOAD_INTERVAL_MS: positiveInt.default(10_000),
}

type TlsEnv = {
  MYCEL_TLS_CERT_FILE?: string | undefined
  MYCEL_TLS_KEY_FILE?: string | undefined
  MYCEL_TLS_CA_FILE?: string | undefined
  MYCEL_TLS_RELOAD_INTERVAL_MS: number
}

const TLS_FILE_KEYS = ['MYCEL_TLS_CERT_FILE', 'MYCEL_TLS_KEY_FILE', 'MYCEL_TLS_CA_FILE'] as const

/** superRefine rule: the three TLS files are set together. */
export function checkTlsEnv(cfg: TlsEnv, ctx: z.RefinementCtx): void {
  const set = TLS_FILE_KEYS.filter((k) => cfg[k] !== undefined)
  if (set.length === 0 || set.length === TLS_FILE_KEYS.length) return
  for (const k of TLS_FILE_KEYS) {
    if (cfg[k] === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: [k],
        message: `required when ${set.join(' and ')} ${set.length > 1 ? 'are' : 'is'} set (mutual TLS needs certificate, key and CA)`,
      })
    }
  }
}

/** The TLS files of a parsed configuration, or undefined when TLS is off. */
export function tlsFilesConfig(cfg: TlsEnv): TlsFilesConfig | undefined {
  if (cfg.MYCEL_TLS_CERT_FILE === undefined || cfg.MYCEL_TLS_KEY_FILE === undefined) return undefined
  if (cfg.MYCEL_TLS_CA_FILE === undefined) return undefined
  return {
    certFile: cfg.MYCEL_TLS_CERT_FILE,
    keyFile: cfg.MYCEL_TLS_KEY_FILE,
    caFile: cfg.MYCEL_TLS_CA_FILE,
    reloadIntervalMs: cfg.MYCEL_TLS_RELOAD_INTERVAL_MS,
  }
}

/** Limits on the node's gRPC port. Message sizes are fixed (MAX_GRPC_MESSAGE_BYTES). */
export const nodeLimitsEnv = {
  /**
   * Concurrent calls (HTTP/2 streams) one connection may have open; a client past it waits for a
   * stream to finish. A gateway multiplexes all its calls to a node on one connection, so this is
   * well above what one gateway uses (reads: 8 per download; writes: one stream per upload).
   */
  MYCEL_GRPC_MAX_CONCURRENT_STREAMS: positiveInt.default(1000),
}
