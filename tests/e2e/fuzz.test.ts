import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { globSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { join, resolve as resolvePath } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createToken, tokenFileLine } from '@mycel/core'
import { startCluster, TEST_TMP, type TestCluster } from '../helpers/cluster.js'
import { deterministicBytes, sha256 } from '../helpers/data.js'

/**
 * The Python of the schemathesis venv: `make test` passes it (MYCEL_SCHEMATHESIS); run alone,
 * the one `make schemathesis` installed under .tools.
 */
function schemathesisPython(): string {
  const given = process.env.MYCEL_SCHEMATHESIS
  if (given) return given
  const found = globSync('.tools/schemathesis-*/bin/python').sort().at(-1)
  if (found === undefined)
    throw new Error('schemathesis is not installed: run `make schemathesis` (make test does)')
  return resolvePath(found)
}

/** Time and examples budget: about a minute of requests, on a machine shared with other work. */
const MAX_TIME_S = Number(process.env.MYCEL_FUZZ_SECONDS ?? 60)
const MAX_EXAMPLES = 25
/** Fixed, so that a failure reproduces; MYCEL_FUZZ_SEED explores other inputs. */
const SEED = process.env.MYCEL_FUZZ_SEED ?? '20261125'

describe('schemathesis fuzzing of the gateway against its OpenAPI description', () => {
  let cluster: TestCluster
  let dir: string
  const token = createToken()
  const auth = { Authorization: `Bearer ${token}` }
  /** Content stored before fuzzing, to read back and hash afterwards. */
  const known: Array<{ cid: string; path: string; hash: string }> = []

  before(async () => {
    mkdirSync(TEST_TMP, { recursive: true })
    dir = await mkdtemp(join(TEST_TMP, 'fuzz-'))
    writeFileSync(join(dir, 'tokens'), `${tokenFileLine('fuzzer', ['admin'], token)}\n`)
    cluster = await startCluster({
      nodes: 3,
      statusToken: token,
      gatewayEnv: {
        MYCEL_AUTH: 'required',
        MYCEL_API_TOKENS_FILE: join(dir, 'tokens'),
        MYCEL_LOG_LEVEL: 'error',
      },
    })
    for (const [name, size] of [
      ['empty', 0],
      ['small', 1000],
      ['multi-block', 1_500_000],
    ] as const) {
      const bytes = deterministicBytes(size, name)
      const res = await fetch(`${cluster.gatewayUrl}/mycel/v1/upload`, {
        method: 'POST',
        body: bytes,
        headers: auth,
      })
      assert.equal(res.status, 201)
      known.push({ cid: ((await res.json()) as { cid: string }).cid, path: '', hash: sha256(bytes) })
    }
    const form = new FormData()
    const files = { 'a.txt': deterministicBytes(3000, 'a'), 'b.bin': deterministicBytes(300_000, 'b') }
    for (const [name, bytes] of Object.entries(files)) form.append('file', new Blob([bytes]), name)
    const add = await fetch(`${cluster.gatewayUrl}/api/v0/add?wrap-with-directory=true`, {
      method: 'POST',
      body: form,
      headers: auth,
    })
    assert.equal(add.status, 200)
    const root = (await add.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { Name: string; Hash: string })
      .find((e) => e.Name === '')
    assert.ok(root)
    for (const [name, bytes] of Object.entries(files))
      known.push({ cid: root.Hash, path: `/${name}`, hash: sha256(bytes) })
  })

  after(async () => {
    await cluster?.destroy()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  it('finds no server error and no answer that contradicts the description', async () => {
    const url = cluster.gatewayUrl
    const args = [
      '-m',
      'schemathesis.cli',
      'run',
      `${url}/mycel/v1/openapi.json`,
      '--url',
      url,
      '--header',
      `Authorization: Bearer ${token}`,
      // Every check but positive_data_acceptance: a CID's validity (multibase, multihash, codec)
      // is beyond JSON Schema, so schema-valid strings are often, correctly, 400.
      '--checks',
      'all',
      '--exclude-checks',
      'positive_data_acceptance',
      '--max-examples',
      String(MAX_EXAMPLES),
      '--max-time',
      String(MAX_TIME_S),
      '--workers',
      '1',
      '--seed',
      SEED,
      '--request-timeout',
      '30',
      '--no-color',
      '--report',
      'junit',
      '--report-dir',
      join(dir, 'report'),
    ]
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
      // In the test's directory: schemathesis keeps its cache of failures (.schemathesis/) in cwd.
      const child = spawn(schemathesisPython(), args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      child.stdout.on('data', (d: Buffer) => (out += d.toString()))
      child.stderr.on('data', (d: Buffer) => (out += d.toString()))
      child.once('exit', (c) => resolve({ code: c, output: out }))
    })
    const summary = output.slice(output.lastIndexOf('SUMMARY') - 40)
    process.stdout.write(
      `# schemathesis (seed ${SEED}, ${MAX_TIME_S} s budget):\n${summary.replace(/^/gm, '# ')}\n`,
    )
    assert.equal(code, 0, `schemathesis found failures:\n${output.slice(-12_000)}`)
  })

  it('left every process running, logged no unhandled error and changed no stored data', async () => {
    assert.ok(cluster.gateway.running, 'gateway running')
    for (const n of cluster.nodes) assert.ok(n.running, `${n.name} running`)
    for (const k of known) {
      const res = await fetch(`${cluster.gatewayUrl}/ipfs/${k.cid}${k.path}`)
      assert.equal(res.status, 200, `${k.cid}${k.path}`)
      assert.equal(sha256(Buffer.from(await res.arrayBuffer())), k.hash, `${k.cid}${k.path} unchanged`)
    }
    const log = readFileSync(join(cluster.dataDir, 'logs', 'gateway.log'), 'utf8')
    const unhandled = log.split('\n').filter((l) => l.includes('"unhandled error"'))
    assert.deepEqual(unhandled.slice(0, 3), [], 'no unhandled error in the gateway log')
  })
})
