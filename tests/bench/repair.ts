/**
 * `make bench`, repair part: how long 4 surviving nodes take to restore 3 copies of everything
 * after one of 5 nodes is lost, against how fast this machine's disk writes the same bytes, and
 * how much data placement moves on a membership change against the optimum.
 */
import { createHash } from 'node:crypto'
import { open, rm, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { placementMovement } from '@mycel/core'
import { freePortRange, startCluster, type TestCluster } from '../helpers/cluster.js'
import { rawUpload } from '../helpers/http.js'
import { everyoneSees } from '../helpers/membership.js'
import { clusterStatus, repairQuiet } from '../helpers/repair.js'

const MiB = 1 << 20

export interface RepairBenchOptions {
  dir: string
  /** Data the lost node holds, in MiB (BENCH_REPAIR_MB). */
  heldMiB: number
  writeFile(path: string, size: number, seed: string): Promise<string>
  log(msg: string): void
  /** Registers a cleanup that runs even when the bench fails. */
  onCleanup(fn: () => Promise<void>): void
}

export interface RepairBenchResult {
  nodes: number
  heldBytes: number
  repairedBytes: number
  /** From the lost node being declared dead everywhere to the last repaired byte. */
  copySeconds: number
  /** From the lost node being declared dead everywhere to every survivor reporting a clean pass. */
  quietSeconds: number
  diskMBps: number
  readBack: boolean
  movement: { join: number; leave: number }
}

const NODES = 5
const LOST = NODES - 1

/** Sequential write of `bytes` with one fdatasync at the end, as `dd conv=fdatasync` does. */
async function diskWriteRate(dir: string, bytes: number): Promise<number> {
  const path = join(dir, 'repair-disk-test.bin')
  const buf = Buffer.alloc(8 * MiB, 0x5a)
  const t0 = performance.now()
  const fh = await open(path, 'w')
  try {
    for (let done = 0; done < bytes; done += buf.length)
      await fh.write(buf, 0, Math.min(buf.length, bytes - done))
    await fh.datasync()
  } finally {
    await fh.close()
  }
  const seconds = (performance.now() - t0) / 1000
  await unlink(path)
  return bytes / 1e6 / seconds
}

/** Placement movement ratios (moved / optimal) from the core simulation, 5 nodes, R=3. */
function simulatedMovement(): { join: number; leave: number } {
  const keys = Array.from({ length: 50_000 }, (_, i) => createHash('sha256').update(`bench-${i}`).digest())
  const five = Array.from({ length: 5 }, (_, i) => ({ id: `n${i}`, zone: 'z', weight: 1 }))
  const six = [...five, { id: 'n5', zone: 'z', weight: 1 }]
  return {
    join: placementMovement(keys, five, six, 3).ratio,
    leave: placementMovement(keys, five, five.slice(0, 4), 3).ratio,
  }
}

export async function measureRepair(o: RepairBenchOptions): Promise<RepairBenchResult> {
  const dataDir = join(o.dir, 'repair')
  const ports = {
    grpc: await freePortRange(NODES),
    admin: await freePortRange(NODES),
    gateway: await freePortRange(1),
    rpc: 'off' as const,
  }
  // Unthrottled repair, no scrub: the figure is how fast repair can go on this machine.
  const env = {
    MYCEL_REPAIR_RATE_BYTES: String(8 * 1024 * MiB),
    MYCEL_REPAIR_INTERVAL_MS: '2000',
    MYCEL_SCRUB_RATE_BYTES: '0',
  }
  let cluster: TestCluster | undefined
  o.onCleanup(async () => {
    await cluster?.stop()
    await rm(dataDir, { recursive: true, force: true })
  })
  o.log(`repair: starting ${NODES} nodes + gateway`)
  cluster = await startCluster({ nodes: NODES, ports, dataDir, env })
  const running = cluster
  // Each node holds about 3/5 of what is uploaded.
  const uploadBytes = Math.ceil((o.heldMiB * MiB * NODES) / 3)
  const file = join(o.dir, 'repair-data.bin')
  const sha = await o.writeFile(file, uploadBytes, 'mycel-bench-repair')
  o.log(`repair: uploading ${(uploadBytes / MiB).toFixed(0)} MiB`)
  const up = await rawUpload(running.gatewayUrl, file)
  if (up.status !== 201) throw new Error(`repair bench upload failed: ${up.status} ${up.text}`)
  await unlink(file)
  const lostId = running.nodeId(LOST)
  const before = await clusterStatus(running.gatewayUrl)
  const heldBytes = before.nodes.find((n) => n.id === lostId)?.blockBytes ?? Number.NaN
  // Measured while the cluster is idle, before the loss.
  const diskMBps = await diskWriteRate(o.dir, heldBytes)

  o.log(
    `repair: node ${LOST} holds ${(heldBytes / MiB).toFixed(0)} MiB; kill -9, waiting until it is declared dead`,
  )
  await running.nodes[LOST]?.kill()
  const survivors = [...Array(NODES).keys()].filter((i) => i !== LOST)
  await everyoneSees(running, LOST, ['dead'], survivors, 10 * 60_000)
  // Repair starts on every survivor once it learns of the death (gossip): the clock starts here.
  const since = new Date()
  const ready = performance.now()
  let repaired = 0
  let lastGrowth = ready
  for (;;) {
    const s = await clusterStatus(running.gatewayUrl)
    if (s.repair.bytesRepaired > repaired) {
      repaired = s.repair.bytesRepaired
      lastGrowth = performance.now()
    }
    if (repairQuiet(s, NODES - 1, since)) break
    if (performance.now() - ready > 30 * 60_000) throw new Error('repair did not complete in 30 minutes')
    await sleep(200)
  }
  const quietSeconds = (performance.now() - ready) / 1000
  const res = await fetch(`${running.gatewayUrl}/ipfs/${up.body.cid}`)
  const hash = createHash('sha256')
  for await (const chunk of res.body ?? []) hash.update(chunk)
  const readBack = res.status === 200 && hash.digest('hex') === sha
  await running.stop()
  await rm(dataDir, { recursive: true, force: true })
  cluster = undefined
  return {
    nodes: NODES,
    heldBytes,
    repairedBytes: repaired,
    copySeconds: (lastGrowth - ready) / 1000,
    quietSeconds,
    diskMBps,
    readBack,
    movement: simulatedMovement(),
  }
}

export function repairReport(r: RepairBenchResult, fmt: (n: number) => string): string {
  const repairMBps = r.heldBytes / 1e6 / r.copySeconds
  return [
    '',
    `Repair after losing one of ${r.nodes} nodes (R=3; kill -9, gossip declares it dead, the survivors repair):`,
    '',
    '| lost node held (MiB) | repaired (MiB) | repaired / held | time to copy (s) | time to clean pass (s) | repair MB/s | disk write+fdatasync MB/s | repair / disk |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|',
    `| ${fmt(r.heldBytes / MiB)} | ${fmt(r.repairedBytes / MiB)} | ${(r.repairedBytes / r.heldBytes).toFixed(3)} | ${fmt(r.copySeconds)} | ${fmt(r.quietSeconds)} | ${fmt(repairMBps)} | ${fmt(r.diskMBps)} | ${(repairMBps / r.diskMBps).toFixed(2)} |`,
    '',
    `- Every file read back after repair: ${r.readBack ? 'yes' : 'NO'}. Time to copy runs from the lost node being declared dead on every survivor to the last repaired byte; ` +
      'time to a clean pass adds the passes that confirm nothing is left (status: under-replicated 0, misplaced 0, queue empty on every node).',
    '- Repair MB/s = data the lost node held / time to copy. Each repaired byte is written by one surviving node through RocksDB ' +
      '(WAL with fdatasync, then memtable flush), on the same disk the disk figure measures.',
    `- Placement movement, simulated (50,000 blocks, 5 nodes, R=3; moved / optimal): a 6th node joins ${r.movement.join.toFixed(3)}, ` +
      `a node leaves ${r.movement.leave.toFixed(3)}; measured here: repaired / held ${(r.repairedBytes / r.heldBytes).toFixed(3)} (1 is the minimum).`,
  ].join('\n')
}
