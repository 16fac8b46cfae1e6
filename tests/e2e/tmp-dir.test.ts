import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { rawBlock, writeCar } from '../helpers/car.js'
import { startCluster, TEST_TMP, type TestCluster } from '../helpers/cluster.js'

const run = promisify(execFile)
const BIN = join(process.cwd(), 'services', 'cli', 'dist', 'bin.js')

async function importCar(url: string): Promise<{ status: number; text: string }> {
  const block = await rawBlock(Buffer.from(`spooled ${Math.random()}\n`))
  const form = new FormData()
  form.append('file', new Blob([await writeCar([block.cid], [block])]), 'one.car')
  const res = await fetch(`${url}/api/v0/dag/import`, { method: 'POST', body: form })
  return { status: res.status, text: await res.text() }
}

/** MYCEL_TMP_DIR: where dag/import spools CARs; checked writable when the gateway starts. */
describe('gateway MYCEL_TMP_DIR', () => {
  let cluster: TestCluster
  let spool: string
  before(async () => {
    await mkdir(TEST_TMP, { recursive: true })
    spool = await mkdtemp(join(TEST_TMP, 'spool-'))
    cluster = await startCluster({ nodes: 1, gatewayEnv: { MYCEL_TMP_DIR: spool } })
  })
  after(async () => {
    await cluster?.destroy()
    await rm(spool, { recursive: true, force: true })
  })

  it('refuses to start when the directory is missing or not a directory, naming it', async () => {
    const notDir = join(spool, 'a-file')
    await writeFile(notDir, 'x')
    for (const [dir, code] of [
      [join(spool, 'missing', 'deeper'), 'ENOENT'],
      [notDir, 'ENOTDIR'],
    ]) {
      const err = await run(process.execPath, [BIN, 'gateway'], {
        env: {
          ...process.env,
          MYCEL_PEERS: '127.0.0.1:1',
          MYCEL_TMP_DIR: dir,
          MYCEL_GATEWAY_LISTEN: '127.0.0.1:0',
          // Only the spool directory is wrong here (a token file is another check).
          MYCEL_AUTH: 'off',
        },
      }).then(
        () => assert.fail('the gateway started'),
        (e: { code: number; stderr: string }) => e,
      )
      assert.equal(err.code, 78, err.stderr)
      assert.ok(
        err.stderr.includes(`MYCEL_TMP_DIR: "${dir}" is not a writable directory (${code})`),
        err.stderr,
      )
    }
    await rm(notDir)
  })

  it('spools imports there and leaves nothing behind', async () => {
    const ok = await importCar(cluster.gatewayUrl)
    assert.equal(ok.status, 200, ok.text)
    assert.deepEqual(await readdir(spool), [])
    // Take the directory away: the import now fails on it, which shows it is the one used.
    await rm(spool, { recursive: true })
    const gone = await importCar(cluster.gatewayUrl)
    assert.equal(gone.status, 500)
    assert.ok(gone.text.includes(spool), gone.text)
    await mkdir(spool)
    assert.equal((await importCar(cluster.gatewayUrl)).status, 200)
  })
})
