import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { appendFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ServiceProcess } from '@mycel/cli'
import { createToken, tokenFileLine } from '@mycel/core'
import { create } from 'kubo-rpc-client'
import { rawBlock, writeCar } from '../helpers/car.js'
import { freePortRange, startCluster, TEST_TMP, type TestCluster } from '../helpers/cluster.js'
import { eventually } from '../helpers/poll.js'

const tokens = { read: createToken(), write: createToken(), admin: createToken(), writeOnly: createToken() }
type Who = keyof typeof tokens | 'anonymous' | 'bogus'

function authHeaders(who: Who): Record<string, string> {
  if (who === 'anonymous') return {}
  if (who === 'bogus') return { Authorization: `Bearer ${createToken()}` }
  return { Authorization: `Bearer ${tokens[who]}` }
}

/** One request per write path of the gateway, each a valid request when authorised. */
async function writeRequests(): Promise<
  Array<{ name: string; path: string; method: string; body: () => Uint8Array | FormData }>
> {
  const block = await rawBlock(randomBytes(2000))
  const car = await writeCar([block.cid], [block])
  const form = (bytes: Uint8Array) => () => {
    const f = new FormData()
    f.append('file', new Blob([bytes]), 'file')
    return f
  }
  return [
    { name: 'raw upload (POST)', path: '/mycel/v1/upload', method: 'POST', body: () => randomBytes(3000) },
    { name: 'raw upload (PUT)', path: '/mycel/v1/upload', method: 'PUT', body: () => randomBytes(3000) },
    { name: 'add', path: '/api/v0/add', method: 'POST', body: form(randomBytes(3000)) },
    { name: 'block/put', path: '/api/v0/block/put', method: 'POST', body: form(randomBytes(3000)) },
    { name: 'dag/import', path: '/api/v0/dag/import', method: 'POST', body: form(car) },
  ]
}

describe('authentication and authorisation at the gateway', () => {
  let cluster: TestCluster
  let tokensFile: string
  let tokensDir: string
  let stored: string

  before(async () => {
    mkdirSync(TEST_TMP, { recursive: true })
    tokensDir = await mkdtemp(join(TEST_TMP, 'tokens-'))
    tokensFile = join(tokensDir, 'tokens')
    writeFileSync(
      tokensFile,
      [
        '# name scopes sha256(token)',
        tokenFileLine('reader', ['read'], tokens.read),
        tokenFileLine('uploader', ['read', 'write'], tokens.write),
        tokenFileLine('operator', ['admin'], tokens.admin),
        tokenFileLine('robot', ['write'], tokens.writeOnly),
        '',
      ].join('\n'),
    )
    // Tokens required (the local cluster's default is off); reads public (the default).
    cluster = await startCluster({
      nodes: 2,
      statusToken: tokens.admin,
      gatewayEnv: { MYCEL_AUTH: 'required', MYCEL_API_TOKENS_FILE: tokensFile },
    })
    const up = await fetch(`${cluster.gatewayUrl}/mycel/v1/upload`, {
      method: 'POST',
      body: randomBytes(5000),
      headers: authHeaders('write'),
    })
    assert.equal(up.status, 201)
    stored = ((await up.json()) as { cid: string }).cid
  })
  after(async () => {
    await cluster?.destroy()
    rmSync(tokensDir, { recursive: true, force: true })
  })

  it('refuses every write path without a token: 401 with WWW-Authenticate, in Kubo shape under /api/v0', async () => {
    for (const who of ['anonymous', 'bogus'] as const) {
      for (const r of await writeRequests()) {
        const res = await fetch(`${cluster.gatewayUrl}${r.path}`, {
          method: r.method,
          body: r.body(),
          headers: authHeaders(who),
        })
        assert.equal(res.status, 401, `${who} ${r.name}`)
        assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm="mycel"/)
        const text = await res.text()
        if (r.path.startsWith('/api/v0/')) {
          const body = JSON.parse(text) as { Message: string; Type: string }
          assert.equal(body.Type, 'error')
          assert.match(
            body.Message,
            who === 'bogus' ? /invalid credentials: unknown or revoked token/ : /authentication required/,
          )
        } else {
          assert.match(text, who === 'bogus' ? /unknown or revoked token/ : /scope "write"/)
        }
      }
    }
  })

  it('refuses every write path to a read token: 403', async () => {
    for (const r of await writeRequests()) {
      const res = await fetch(`${cluster.gatewayUrl}${r.path}`, {
        method: r.method,
        body: r.body(),
        headers: authHeaders('read'),
      })
      assert.equal(res.status, 403, r.name)
      assert.match(await res.text(), /token \\?"reader\\?" lacks the \\?"write\\?" scope/)
      assert.match(res.headers.get('www-authenticate') ?? '', /insufficient_scope/)
    }
  })

  it('accepts every write path with a write token (and with an admin token)', async () => {
    for (const who of ['write', 'admin', 'writeOnly'] as const) {
      for (const r of await writeRequests()) {
        const res = await fetch(`${cluster.gatewayUrl}${r.path}`, {
          method: r.method,
          body: r.body(),
          headers: authHeaders(who),
        })
        assert.ok(
          res.status === 200 || res.status === 201,
          `${who} ${r.name}: ${res.status} ${await res.text()}`,
        )
      }
    }
  })

  it('answers a refused large upload with its 401 instead of resetting the connection', async () => {
    const res = await fetch(`${cluster.gatewayUrl}/mycel/v1/upload`, {
      method: 'POST',
      body: randomBytes(8_000_000),
    })
    assert.equal(res.status, 401)
  })

  it('reads are public by default; cluster status needs admin', async () => {
    assert.equal((await fetch(`${cluster.gatewayUrl}/ipfs/${stored}`)).status, 200)
    const cat = await fetch(`${cluster.gatewayUrl}/api/v0/cat?arg=${stored}`, { method: 'POST' })
    assert.equal(cat.status, 200)
    assert.equal((await fetch(`${cluster.gatewayUrl}/mycel/v1/status`)).status, 401)
    assert.equal(
      (await fetch(`${cluster.gatewayUrl}/mycel/v1/status`, { headers: authHeaders('write') })).status,
      403,
    )
    assert.equal(
      (await fetch(`${cluster.gatewayUrl}/MYCEL/V1/STATUS/`, { headers: authHeaders('write') })).status,
      403,
      'another spelling of the same route is classified the same',
    )
    assert.equal(
      (await fetch(`${cluster.gatewayUrl}/mycel/v1/status`, { headers: authHeaders('admin') })).status,
      200,
    )
    for (const open of ['/healthz', '/readyz', '/metrics']) {
      assert.equal((await fetch(`${cluster.gatewayUrl}${open}`)).status, 200, open)
    }
  })

  it('the real kubo-rpc-client works with a token in its headers', async () => {
    const kubo = create({
      url: `${cluster.gatewayUrl}/api/v0`,
      headers: { authorization: `Bearer ${tokens.write}` },
    })
    const added = await kubo.add(randomBytes(10_000), { cidVersion: 1 })
    assert.match(added.cid.toString(), /^bafk/)
    const anonymous = create({ url: `${cluster.gatewayUrl}/api/v0` })
    await assert.rejects(anonymous.add(randomBytes(100)), /authentication required/)
  })

  it('a token added to or removed from the file applies without a restart', async () => {
    const late = createToken()
    const headers = { Authorization: `Bearer ${late}` }
    const upload = () =>
      fetch(`${cluster.gatewayUrl}/mycel/v1/upload`, {
        method: 'POST',
        body: randomBytes(100),
        headers,
      }).then((r) => r.status)
    assert.equal(await upload(), 401)
    appendFileSync(tokensFile, `${tokenFileLine('late-comer', ['write'], late)}\n`)
    await eventually(async () => (await upload()) === 201, 'the new token to be accepted')
    const kept = readFileSync(tokensFile, 'utf8').split('\n')
    writeFileSync(tokensFile, kept.filter((l) => !l.includes('late-comer')).join('\n'))
    await eventually(async () => (await upload()) === 401, 'the revoked token to be refused')
  })

  describe('a private gateway (MYCEL_PUBLIC_READS=false)', () => {
    let url: string
    let gateway: ServiceProcess
    before(async () => {
      const port = await freePortRange(1)
      url = `http://127.0.0.1:${port}`
      gateway = new ServiceProcess(
        'private-gateway',
        'gateway',
        {
          MYCEL_PEERS: [cluster.nodeAddress(0), cluster.nodeAddress(1)].join(','),
          MYCEL_GATEWAY_LISTEN: `127.0.0.1:${port}`,
          MYCEL_RPC_LISTEN: 'off',
          MYCEL_REPLICATION: '2',
          MYCEL_AUTH: 'required',
          MYCEL_API_TOKENS_FILE: tokensFile,
          MYCEL_PUBLIC_READS: 'false',
          MYCEL_LOG_LEVEL: 'warn',
        },
        join(cluster.dataDir, 'logs', 'private-gateway.log'),
        60_000,
      )
      await gateway.start()
    })
    after(async () => {
      await gateway?.stop()
    })

    it('answers unauthorised reads of existing, missing and malformed CIDs identically', async () => {
      const missing = (await rawBlock(randomBytes(64))).cid.toString()
      for (const who of ['anonymous', 'bogus', 'writeOnly'] as const) {
        const answers = new Set<string>()
        for (const target of [stored, missing, 'not-a-cid']) {
          for (const [path, method] of [
            [`/ipfs/${target}`, 'GET'],
            [`/ipfs/${target}?format=raw`, 'GET'],
            [`/api/v0/cat?arg=${target}`, 'POST'],
            [`/api/v0/block/stat?arg=${target}`, 'POST'],
          ] as const) {
            const res = await fetch(`${url}${path}`, { method, headers: authHeaders(who) })
            const body = await res.text()
            const kind = path.startsWith('/api') ? 'rpc' : 'gw'
            answers.add(`${kind} ${res.status} ${res.headers.get('www-authenticate')} ${body}`)
          }
        }
        assert.equal(answers.size, 2, `${who}: one answer per error shape, whatever the CID: ${[...answers]}`)
        assert.ok([...answers].every((a) => / 40[13] /.test(a)))
      }
    })

    it('serves reads to read tokens', async () => {
      const res = await fetch(`${url}/ipfs/${stored}`, { headers: authHeaders('read') })
      assert.equal(res.status, 200)
      const missing = (await rawBlock(randomBytes(64))).cid.toString()
      assert.equal((await fetch(`${url}/ipfs/${missing}`, { headers: authHeaders('read') })).status, 404)
      assert.equal((await fetch(`${url}/ipfs/${stored}`, { headers: authHeaders('admin') })).status, 200)
      // CORS preflights carry no credentials and reveal nothing.
      assert.equal((await fetch(`${url}/ipfs/${stored}`, { method: 'OPTIONS' })).status, 200)
    })
  })
})
