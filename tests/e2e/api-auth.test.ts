import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type ChannelCredentials, credentials, Metadata, status } from '@grpc/grpc-js'
import { createToken, tokenFileLine } from '@mycel/core'
import { BlockServiceClient } from '@mycel/proto'
import { MycelClient } from '@mycel/sdk'
import { failure } from '../helpers/api.js'
import { startCluster, TEST_TMP, type TestCluster } from '../helpers/cluster.js'
import { eventually } from '../helpers/poll.js'
import { makePki, type TestPki } from '../helpers/tls.js'

const CLI = join(process.cwd(), 'services/cli/dist/bin.js')

/** TLS on the nodes' port and bearer tokens with scopes on the public API (2 nodes, a gateway). */
describe('public API with TLS and tokens', () => {
  let cluster: TestCluster
  let dir: string
  let pki: TestPki
  let tokensFile: string
  const tokens = { read: createToken(), write: createToken(), admin: createToken(), gateway: createToken() }
  const client = (token?: string) =>
    new MycelClient({ nodes: [cluster.nodeAddress(0)], token, tls: { ca: pkiCa } })
  let pkiCa: Buffer

  before(async () => {
    await mkdir(TEST_TMP, { recursive: true })
    dir = await mkdtemp(join(TEST_TMP, 'auth-'))
    pki = await makePki(dir)
    pkiCa = await readFile(pki.ca)
    tokensFile = join(dir, 'tokens')
    await writeFile(
      tokensFile,
      [
        '# name scopes sha256',
        tokenFileLine('reader', ['read'], tokens.read),
        tokenFileLine('writer', ['write'], tokens.write),
        tokenFileLine('ops', ['admin'], tokens.admin),
        tokenFileLine('gateway', ['read', 'write'], tokens.gateway),
        '',
      ].join('\n'),
    )
    const tls = { MYCEL_TLS_CERT_FILE: pki.cert, MYCEL_TLS_KEY_FILE: pki.key, MYCEL_TLS_CA_FILE: pki.ca }
    cluster = await startCluster({
      nodes: 2,
      env: tls,
      nodeEnv: () => ({ MYCEL_API_TOKENS_FILE: tokensFile }),
      gatewayEnv: { MYCEL_API_TOKEN: tokens.gateway },
    })
  })
  after(async () => {
    await cluster?.destroy()
    await rm(dir, { recursive: true, force: true })
  })

  it('serves TLS: a client trusting the CA works, a plaintext client cannot connect', async () => {
    const c = client(tokens.admin)
    try {
      const added = await c.add(randomBytes(300_000))
      assert.equal((await c.stat(added.cid)).size, 300_000)
      assert.equal((await c.status()).membersUp, 2)
    } finally {
      c.close()
    }
    const plain = new MycelClient({
      nodes: [cluster.nodeAddress(0)],
      token: tokens.admin,
      connectTimeoutMs: 2_000,
    })
    try {
      const r = await failure(plain.status({ timeoutMs: 5_000 }))
      assert.equal(r.code, status.UNAVAILABLE)
    } finally {
      plain.close()
    }
  })

  it('UNAUTHENTICATED without a token or with an unknown one', async () => {
    for (const [token, message] of [
      [undefined, /requires a token: send "authorization: Bearer <token>"/],
      [createToken(), /unknown or revoked token/],
    ] as const) {
      const c = client(token)
      try {
        const r = await failure(c.stat('bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'))
        assert.deepEqual([r.code, r.mycel], [status.UNAUTHENTICATED, 'UNAUTHENTICATED'])
        assert.match(r.details, message)
      } finally {
        c.close()
      }
    }
  })

  it('PERMISSION_DENIED when the token lacks the scope; each scope opens its methods', async () => {
    const reader = client(tokens.read)
    const writer = client(tokens.write)
    try {
      const denied = await failure(reader.add(Buffer.from('no')))
      assert.deepEqual([denied.code, denied.mycel], [status.PERMISSION_DENIED, 'PERMISSION_DENIED'])
      assert.match(denied.details, /token "reader" lacks the "write" scope/)
      const added = await writer.add(Buffer.from('yes'))
      assert.equal((await reader.stat(added.cid)).size, 3)
      assert.equal((await failure(writer.stat(added.cid))).code, status.PERMISSION_DENIED)
      assert.equal((await failure(reader.status())).code, status.PERMISSION_DENIED)
      assert.equal((await failure(writer.status())).code, status.PERMISSION_DENIED)
      assert.ok((await reader.listPins()).some((p) => p.cid === added.cid))
    } finally {
      reader.close()
      writer.close()
    }
  })

  it('internal node-to-node calls need a cluster certificate but no token, and the gateway works through TLS and its token', async () => {
    const stats = (creds: ChannelCredentials) => {
      const block = new BlockServiceClient(cluster.nodeAddress(1), creds)
      return new Promise<{ nodeId: string }>((resolve, reject) =>
        block.getNodeStats({}, new Metadata(), (err, res) => (err ? reject(err) : resolve(res))),
      ).finally(() => block.close())
    }
    // Server-side TLS only (what API clients have): the internal service refuses the call.
    const refused = await failure(stats(credentials.createSsl(pkiCa)))
    assert.equal(refused.code, status.UNAUTHENTICATED)
    const cert = await readFile(pki.cert)
    const key = await readFile(pki.key)
    assert.match((await stats(credentials.createSsl(pkiCa, key, cert))).nodeId, /^node-/)
    const form = new FormData()
    form.append('file', new Blob([randomBytes(5000)]), 'g.bin')
    const res = await fetch(`${cluster.gatewayUrl}/api/v0/add?pin=true`, { method: 'POST', body: form })
    const text = await res.text()
    assert.equal(res.status, 200, text)
    const cid = (JSON.parse(text) as { Hash: string }).Hash
    const ls = await fetch(`${cluster.gatewayUrl}/api/v0/pin/ls?arg=${cid}`, { method: 'POST' })
    assert.equal(ls.status, 200)
    assert.deepEqual(await ls.json(), { Keys: { [cid]: { Type: 'recursive' } } })
  })

  it('the CLI takes --ca and --token; a missing token exits 4', () => {
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [CLI, '--node', cluster.nodeAddress(0), '--ca', pki.ca, ...args], {
        encoding: 'utf8',
        env: { ...process.env, MYCEL_TOKEN: '' },
      })
    const ok = run('--token', tokens.admin, 'status', '--json')
    assert.equal(ok.status, 0, ok.stderr)
    assert.equal((JSON.parse(ok.stdout) as { membersUp: number }).membersUp, 2)
    const denied = run('status')
    assert.equal(denied.status, 4, denied.stderr)
    assert.match(denied.stderr, /requires a token/)
  })

  it('follows the tokens file: a new token works, a removed one stops working, without a restart', async () => {
    const fresh = createToken()
    const before = await readFile(tokensFile, 'utf8')
    await writeFile(tokensFile, `${before}${tokenFileLine('late', ['read'], fresh)}\n`)
    const c = client(fresh)
    try {
      await eventually(
        async () =>
          await c.listPins().then(
            () => true,
            () => false,
          ),
        'the new token to be accepted',
      )
      await writeFile(tokensFile, before)
      await eventually(
        async () => (await failure(c.listPins()).catch(() => ({ code: -1 }))).code === status.UNAUTHENTICATED,
        'the removed token to be refused',
      )
    } finally {
      c.close()
    }
  })
})
