import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { loadNodeEnv } from '../config/schema.js'
import { tlsFilesConfig } from '../config/security.js'
import { ConfigInvalidError } from '../errors.js'
import { TlsFiles } from './cert-files.js'

const MAKE_CERTS = fileURLToPath(new URL('../../../../deploy/tls/make-certs.sh', import.meta.url))

describe('TLS files', () => {
  let dir: string
  const files = (name: string, caDir = dir) => ({
    certFile: join(dir, `${name}.crt`),
    keyFile: join(dir, `${name}.key`),
    caFile: join(caDir, 'ca.crt'),
    reloadIntervalMs: 60_000,
  })
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mycel-tls-'))
    execFileSync(MAKE_CERTS, [join(dir, 'a'), '2'], { stdio: 'pipe' })
    execFileSync(MAKE_CERTS, [join(dir, 'b'), '1'], { stdio: 'pipe' })
    for (const f of ['node-0.crt', 'node-0.key', 'node-1.crt', 'node-1.key', 'ca.crt'])
      copyFileSync(join(dir, 'a', f), join(dir, f))
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('loads a valid set and describes it', () => {
    const tls = TlsFiles.load(files('node-0'))
    try {
      assert.match(tls.current.subject, /CN=node-0/)
      assert.ok(tls.current.notAfter.getTime() > Date.now())
    } finally {
      tls.close()
    }
  })

  it('refuses at startup, with the reason: missing file, key of another certificate, foreign CA', () => {
    assert.throws(() => TlsFiles.load({ ...files('node-0'), certFile: join(dir, 'nope.crt') }), {
      name: 'ConfigInvalidError',
      message: /cannot read the certificate .*nope\.crt: ENOENT/,
    })
    assert.throws(() => TlsFiles.load({ ...files('node-0'), keyFile: join(dir, 'node-1.key') }), {
      message: /does not belong to the certificate/,
    })
    assert.throws(() => TlsFiles.load({ ...files('node-0'), caFile: join(dir, 'b', 'ca.crt') }), {
      message: /is not issued by the CA/,
    })
    assert.throws(() => TlsFiles.load({ ...files('node-0'), certFile: join(dir, 'node-0.key') }), {
      message: /holds no PEM certificate/,
    })
  })

  it('keeps the previous set while an update is half written, then publishes the new one', async () => {
    const tls = TlsFiles.load(files('node-0'))
    const seen: string[] = []
    tls.onChange((m) => seen.push(m.subject))
    const identities: string[] = []
    tls.addIdentityCertificateListener((u) => identities.push(u ? 'cert' : 'null'))
    try {
      await new Promise((r) => process.nextTick(r))
      assert.deepEqual(identities, ['cert'], 'a new listener gets the current set')
      assert.equal(tls.reload(), false, 'unchanged files publish nothing')
      // The certificate of node-1 lands first: it does not match the old key yet.
      copyFileSync(join(dir, 'node-1.crt'), join(dir, 'node-0.crt.tmp'))
      renameSync(join(dir, 'node-0.crt.tmp'), join(dir, 'node-0.crt'))
      assert.equal(tls.reload(), false)
      assert.match(tls.current.subject, /CN=node-0/)
      copyFileSync(join(dir, 'node-1.key'), join(dir, 'node-0.key.tmp'))
      renameSync(join(dir, 'node-0.key.tmp'), join(dir, 'node-0.key'))
      assert.equal(tls.reload(), true)
      assert.match(tls.current.subject, /CN=node-1/)
      assert.equal(seen.length, 1)
      assert.deepEqual(identities, ['cert', 'cert'])
    } finally {
      tls.close()
    }
  })

  it('configuration: all three files or none', () => {
    assert.equal(tlsFilesConfig(loadNodeEnv({})), undefined)
    assert.throws(
      () => loadNodeEnv({ MYCEL_TLS_CERT_FILE: '/x.crt' }),
      (err: unknown) =>
        err instanceof ConfigInvalidError &&
        err.issues.some((i) => i.startsWith('MYCEL_TLS_KEY_FILE: required when MYCEL_TLS_CERT_FILE')) &&
        err.issues.some((i) => i.startsWith('MYCEL_TLS_CA_FILE: required')),
    )
    const cfg = loadNodeEnv({ MYCEL_TLS_CERT_FILE: 'c', MYCEL_TLS_KEY_FILE: 'k', MYCEL_TLS_CA_FILE: 'a' })
    assert.deepEqual(tlsFilesConfig(cfg), {
      certFile: 'c',
      keyFile: 'k',
      caFile: 'a',
      reloadIntervalMs: 10_000,
    })
  })
})
