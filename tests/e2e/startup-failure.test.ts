import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { TEST_TMP } from '../helpers/cluster.js'

const run = promisify(execFile)
const BIN = join(process.cwd(), 'services', 'cli', 'dist', 'bin.js')

/**
 * A service whose listener cannot bind must exit non-zero (a supervisor restarts it or reports
 * it), not hang with half its components running.
 */
describe('a service that cannot bind its port exits', () => {
  let taken: Server
  let port: number
  let dir: string
  before(async () => {
    await mkdir(TEST_TMP, { recursive: true })
    dir = await mkdtemp(join(TEST_TMP, 'startup-'))
    taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    port = (taken.address() as { port: number }).port
  })
  after(async () => {
    await new Promise((resolve) => taken.close(resolve))
    await rm(dir, { recursive: true, force: true })
  })

  async function exitOf(
    args: string[],
    env: Record<string, string>,
  ): Promise<{ code: number; stderr: string }> {
    return run(process.execPath, [BIN, ...args], {
      env: { ...process.env, MYCEL_LOG_LEVEL: 'error', ...env },
      // Generous: a hang is what this catches, not slowness.
      timeout: 60_000,
    }).then(
      () => assert.fail('the service started on a port already in use'),
      (e: { code: number | null; signal: string | null; stderr: string }) => {
        assert.equal(e.signal, null, `killed by ${e.signal} after the deadline: it hung (${e.stderr})`)
        return { code: e.code as number, stderr: e.stderr }
      },
    )
  }

  it('the gateway', async () => {
    const r = await exitOf(['gateway'], {
      MYCEL_PEERS: '127.0.0.1:1',
      MYCEL_GATEWAY_LISTEN: `127.0.0.1:${port}`,
      MYCEL_RPC_LISTEN: 'off',
      MYCEL_TMP_DIR: dir,
      // The port in use is the failure here, not a missing token file.
      MYCEL_AUTH: 'off',
    })
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /EADDRINUSE/)
  })

  it('a storage node', async () => {
    const r = await exitOf(['node'], {
      MYCEL_DATA_DIR: join(dir, 'node'),
      MYCEL_GRPC_LISTEN: '127.0.0.1:0',
      MYCEL_ADMIN_LISTEN: `127.0.0.1:${port}`,
    })
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /EADDRINUSE/)
  })
})
