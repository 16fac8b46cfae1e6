import { readFileSync } from 'node:fs'
import { type ChannelCredentials, credentials, ServerCredentials } from '@grpc/grpc-js'
import { ConfigInvalidError } from '@mycel/core'

/** The TLS files of a process (MYCEL_TLS_CERT_FILE, MYCEL_TLS_KEY_FILE, MYCEL_TLS_CA_FILE). */
export interface GrpcTlsFiles {
  MYCEL_TLS_CERT_FILE?: string | undefined
  MYCEL_TLS_KEY_FILE?: string | undefined
  MYCEL_TLS_CA_FILE?: string | undefined
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw new ConfigInvalidError([`${what}: cannot read ${path}: ${(err as Error).message}`])
  }
}

/** Whether the nodes' gRPC port is TLS in this configuration. */
export function grpcTlsEnabled(cfg: GrpcTlsFiles): boolean {
  return cfg.MYCEL_TLS_CA_FILE !== undefined
}

/**
 * Credentials for dialing nodes: plaintext without TLS files; with them, TLS that trusts the CA
 * bundle and presents this process's certificate (nodes may ask for it).
 */
export function nodeChannelCredentials(cfg: GrpcTlsFiles): ChannelCredentials {
  if (!grpcTlsEnabled(cfg)) return credentials.createInsecure()
  const ca = read(cfg.MYCEL_TLS_CA_FILE as string, 'MYCEL_TLS_CA_FILE')
  const key = cfg.MYCEL_TLS_KEY_FILE ? read(cfg.MYCEL_TLS_KEY_FILE, 'MYCEL_TLS_KEY_FILE') : null
  const cert = cfg.MYCEL_TLS_CERT_FILE ? read(cfg.MYCEL_TLS_CERT_FILE, 'MYCEL_TLS_CERT_FILE') : null
  return credentials.createSsl(ca, key, cert)
}

/** A node's server credentials: plaintext without TLS files, else TLS with its certificate. */
export function nodeServerCredentials(cfg: GrpcTlsFiles): ServerCredentials {
  if (cfg.MYCEL_TLS_CERT_FILE === undefined || cfg.MYCEL_TLS_KEY_FILE === undefined) {
    return ServerCredentials.createInsecure()
  }
  return ServerCredentials.createSsl(
    null,
    [
      {
        cert_chain: read(cfg.MYCEL_TLS_CERT_FILE, 'MYCEL_TLS_CERT_FILE'),
        private_key: read(cfg.MYCEL_TLS_KEY_FILE, 'MYCEL_TLS_KEY_FILE'),
      },
    ],
    false,
  )
}
