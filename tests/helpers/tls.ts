import { execFileSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

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
