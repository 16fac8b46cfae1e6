import { isIP } from 'node:net'
import { z } from 'zod'
import type { TlsFilesConfig } from '../tls/cert-files.js'
import { boolFlag, nonNegativeInt, positiveInt } from './env.js'

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

/** Limits at the gateway's HTTP listeners; each breach is answered with its own status. */
export const gatewayLimitsEnv = {
  /** Largest request line plus headers (Node's maxHeaderSize); larger requests get 431. */
  MYCEL_MAX_HEADER_BYTES: positiveInt
    .min(1024)
    .max(1024 * 1024)
    .default(16 * 1024),
  /** Time a client has to send the request line and headers; slower ones get 408. */
  MYCEL_HEADERS_TIMEOUT_MS: positiveInt.default(30_000),
  /**
   * Body progress: over each period of this length during which the gateway waits for body bytes
   * (time the gateway itself applies backpressure does not count), the client must send at least
   * MYCEL_BODY_MIN_RATE bytes per second, else 408 and the connection is closed.
   */
  MYCEL_BODY_TIMEOUT_MS: positiveInt.default(30_000),
  /** Bytes per second a request body must average (see MYCEL_BODY_TIMEOUT_MS); 0 only needs some progress. */
  MYCEL_BODY_MIN_RATE: nonNegativeInt.default(1024),
  /** Requests in progress at once, over all clients; past it 503 with Retry-After. */
  MYCEL_MAX_CONCURRENT_REQUESTS: positiveInt.default(1024),
  /** Requests in progress at once per client (token, or IP address when anonymous); past it 429. */
  MYCEL_MAX_CONCURRENT_PER_CLIENT: positiveInt.default(64),
  /** Sustained requests per second per client (token bucket); 0 turns the rate limit off. */
  MYCEL_RATE_LIMIT_RPS: nonNegativeInt.default(500),
  /** Requests a client may make at once above the sustained rate (the bucket's size). */
  MYCEL_RATE_LIMIT_BURST: positiveInt.default(1000),
  /**
   * Proxies whose X-Forwarded-For is believed when identifying a client (Express "trust proxy":
   * comma-separated addresses or CIDRs, or loopback, linklocal, uniquelocal). Unset: the peer
   * address is the client.
   */
  MYCEL_TRUSTED_PROXIES: z.string().optional(),
}

/** Bearer-token authentication at the gateway (services/core/src/auth). */
export const gatewayAuthEnv = {
  /**
   * `required`: writes, pins and admin calls need a token with the right scope (and reads too
   * unless MYCEL_PUBLIC_READS). `off`: no authentication (make run, trusted networks only).
   */
  MYCEL_AUTH: z.enum(['required', 'off']).default('required'),
  /**
   * Token file (the format of auth/tokens.ts, shared with the nodes' public gRPC API): lines
   * `NAME SCOPE[,SCOPE] SHA256HEX`, hashes only; reloaded when it changes.
   */
  MYCEL_API_TOKENS_FILE: z.string().min(1).optional(),
  /** Whether anyone may read content (a public gateway); false: reads need a `read` token. */
  MYCEL_PUBLIC_READS: boolFlag.default(true),
}

/** superRefine rule: required authentication needs a token file. */
export function checkAuthEnv(
  cfg: { MYCEL_AUTH: 'required' | 'off'; MYCEL_API_TOKENS_FILE?: string | undefined },
  ctx: z.RefinementCtx,
): void {
  if (cfg.MYCEL_AUTH === 'required' && cfg.MYCEL_API_TOKENS_FILE === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['MYCEL_API_TOKENS_FILE'],
      message:
        'required when MYCEL_AUTH=required (the default); an empty file means nobody may write. Set MYCEL_AUTH=off for a gateway without authentication',
    })
  }
}

/** superRefine rule: MYCEL_TRUSTED_PROXIES holds what Express's "trust proxy" understands. */
export function checkTrustedProxies(
  cfg: { MYCEL_TRUSTED_PROXIES?: string | undefined },
  ctx: z.RefinementCtx,
): void {
  for (const item of (cfg.MYCEL_TRUSTED_PROXIES ?? '').split(',').map((s) => s.trim())) {
    if (item === '' || ['loopback', 'linklocal', 'uniquelocal'].includes(item)) continue
    const [ip = '', prefix] = item.split('/')
    const version = isIP(ip)
    const bits = prefix === undefined ? 0 : Number(prefix)
    if (version === 0 || !Number.isInteger(bits) || bits < 0 || bits > (version === 4 ? 32 : 128)) {
      ctx.addIssue({
        code: 'custom',
        path: ['MYCEL_TRUSTED_PROXIES'],
        message: `"${item}" is not an IP address, a CIDR, loopback, linklocal or uniquelocal`,
      })
    }
  }
}
