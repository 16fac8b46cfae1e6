import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { type ChannelCredentials, type ChannelOptions, credentials } from '@grpc/grpc-js'
import { BlockServiceClient } from '@mycel/proto'

const MAKE_CERTS = join(process.cwd(), 'deploy/tls/make-certs.sh')

/** A CA with node-<i> and gateway certificates in `dir` (the same tool as `make certs`). */
export function makeCerts(dir: string, nodes: number, extraSans?: string): void {
  execFileSync(MAKE_CERTS, [dir, String(nodes)], {
    stdio: 'pipe',
    env: { ...process.env, ...(extraSans ? { EXTRA_SANS: extraSans } : {}) },
  })
}

/**
 * TLS channel credentials that trust `caDir`'s CA and, when `identity` names a certificate in
 * `identityDir` (default `caDir`), present it as the client certificate.
 */
export function tlsCredentials(caDir: string, identity?: string, identityDir = caDir): ChannelCredentials {
  const ca = readFileSync(join(caDir, 'ca.crt'))
  if (identity === undefined) return credentials.createSsl(ca)
  return credentials.createSsl(
    ca,
    readFileSync(join(identityDir, `${identity}.key`)),
    readFileSync(join(identityDir, `${identity}.crt`)),
  )
}

export function tlsBlockClient(
  address: string,
  creds: ChannelCredentials,
  options: ChannelOptions = {},
): BlockServiceClient {
  return new BlockServiceClient(address, creds, {
    ...options,
    'grpc.max_send_message_length': 16 * 1024 * 1024,
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    // Each test client opens its own connection, so each sees the server's current certificate.
    'grpc.use_local_subchannel_pool': 1,
  })
}
