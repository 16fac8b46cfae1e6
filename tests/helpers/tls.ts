import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
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

export interface TestPki {
  ca: string
  cert: string
  key: string
}

/** A throwaway CA and a certificate for 127.0.0.1 and localhost, made with openssl in `dir`. */
export async function makePki(dir: string): Promise<TestPki> {
  await mkdir(dir, { recursive: true })
  const f = (name: string) => join(dir, name)
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      f('ca.key'),
      '-out',
      f('ca.crt'),
      '-days',
      '2',
      '-subj',
      '/CN=mycel-test-ca',
    ],
    { stdio: 'ignore' },
  )
  execFileSync(
    'openssl',
    ['req', ...ec, '-keyout', f('node.key'), '-out', f('node.csr'), '-subj', '/CN=mycel-node'],
    { stdio: 'ignore' },
  )
  await writeFile(f('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  execFileSync(
    'openssl',
    [
      'x509',
      '-req',
      '-in',
      f('node.csr'),
      '-CA',
      f('ca.crt'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-out',
      f('node.crt'),
      '-days',
      '2',
      '-extfile',
      f('san.ext'),
    ],
    { stdio: 'ignore' },
  )
  return { ca: f('ca.crt'), cert: f('node.crt'), key: f('node.key') }
}
