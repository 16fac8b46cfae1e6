import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, statfs, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startCluster, TEST_TMP, type TestCluster } from '../helpers/cluster.js'
import { deterministicBytes } from '../helpers/data.js'
import { rawUpload } from '../helpers/http.js'
import { scrape, sumOf } from '../helpers/metrics.js'
import { poll } from '../helpers/poll.js'

/** Polls until `url` answers `status` (and, if given, a body matching `body`); returns the answer. */
function waitForStatus(url: string, status: number, body?: RegExp, timeoutMs = 60_000): Promise<string> {
  return poll(`${url} to answer ${status}${body ? ` matching ${body}` : ''}`, timeoutMs, async () => {
    const res = await fetch(url)
    const answer = `${res.status} ${await res.text()}`
    if (res.status === status && (body === undefined || body.test(answer))) return answer
    throw new Error(answer)
  })
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error}`)
}

/**
 * A node whose disk fills up. Its data directory is a small tmpfs of its own (the tests run as
 * root, as CI does); a filler file takes the space, so RocksDB's next WAL append fails with
 * ENOSPC exactly as on a full volume, and deleting it frees the space again. No test hook in the
 * node: the fault is the real one.
 */
describe('readiness: a node whose disk fills up, and a gateway that loses its quorum', () => {
  let cluster: TestCluster
  let dataDir: string
  let mountPoint: string
  let mounted = false
  const filler = () => join(mountPoint, 'filler')

  before(async () => {
    await mkdir(TEST_TMP, { recursive: true })
    dataDir = await mkdtemp(join(TEST_TMP, 'readiness-'))
    mountPoint = join(dataDir, 'node-2')
    await mkdir(mountPoint)
    run('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', mountPoint])
    mounted = true
    cluster = await startCluster({ nodes: 3, dataDir })
  })

  after(async () => {
    await cluster?.stop()
    if (mounted) {
      const r = spawnSync('umount', [mountPoint])
      if (r.status !== 0) spawnSync('umount', ['-l', mountPoint])
    }
    if (process.env.KEEP) return
    await rm(dataDir, { recursive: true, force: true })
  })

  it('a node goes not-ready when its disk is full and ready again once space is freed', async () => {
    const nodeAdmin = cluster.adminUrl(2)
    await waitForStatus(`${nodeAdmin}/readyz`, 200)
    const before = await scrape(`${nodeAdmin}/metrics`)

    // Leave less room than one block: the node's next write batch cannot reach its WAL.
    const fs = await statfs(mountPoint)
    await writeFile(filler(), Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - 64 * 1024)))
    const up = await rawUpload(cluster.gatewayUrl, deterministicBytes(4 * 262_144, 'disk-full'))
    assert.equal(up.status, 201, `the write quorum holds without the full node: ${up.text}`)

    // Not ready from the first failed write; while it retries, the reason alternates between the
    // store's error and "reopening after a failure": the error must be named at some point.
    const notReady = await waitForStatus(`${nodeAdmin}/readyz`, 503, /no space left on device/i)
    assert.match(notReady, /no space left on device/i)
    // Liveness is not readiness: the process is fine, it must not be restarted.
    assert.equal((await fetch(`${nodeAdmin}/healthz`)).status, 200)
    const failing = await scrape(`${nodeAdmin}/metrics`)
    assert.equal(sumOf(failing, 'mycel_node_ready'), 0)
    assert.equal(sumOf(failing, 'mycel_node_store_healthy'), 0)
    assert.ok(
      sumOf(failing, 'mycel_node_rocksdb_write_batch_failures_total') >
        sumOf(before, 'mycel_node_rocksdb_write_batch_failures_total'),
    )

    await rm(filler())
    await waitForStatus(`${nodeAdmin}/readyz`, 200)
    // It stores again: a new upload puts blocks on it (R = 3 of 3 nodes).
    const blocksBefore = sumOf(await scrape(`${nodeAdmin}/metrics`), 'mycel_node_blocks')
    const again = await rawUpload(cluster.gatewayUrl, deterministicBytes(2 * 262_144, 'after-recovery'))
    assert.equal(again.status, 201, again.text)
    const recovered = await scrape(`${nodeAdmin}/metrics`)
    assert.ok(sumOf(recovered, 'mycel_node_blocks') > blocksBefore, 'the recovered node stores blocks again')
    assert.equal(sumOf(recovered, 'mycel_node_store_healthy'), 1)
    // What it acknowledged before the disk filled is still there after the reopen.
    const got = await fetch(`${cluster.gatewayUrl}/ipfs/${up.body.cid}`)
    assert.equal(got.status, 200)
    assert.equal((await got.arrayBuffer()).byteLength, 4 * 262_144)
  })

  it('the gateway goes not-ready when fewer than W members are routable and ready when they return', async () => {
    const readyz = `${cluster.gatewayUrl}/readyz`
    await waitForStatus(readyz, 200)
    await cluster.nodes[0]!.stop()
    await cluster.nodes[1]!.stop()
    const body = await waitForStatus(readyz, 503)
    assert.match(body, /1 routable members, write quorum needs 2/)
    assert.equal((await fetch(`${cluster.gatewayUrl}/healthz`)).status, 200)
    assert.equal(sumOf(await scrape(`${cluster.gatewayUrl}/metrics`), 'mycel_gateway_ready'), 0)
    await cluster.nodes[0]!.start()
    await cluster.nodes[1]!.start()
    await waitForStatus(readyz, 200)
    assert.equal(sumOf(await scrape(`${cluster.gatewayUrl}/metrics`), 'mycel_gateway_ready'), 1)
  })
})
