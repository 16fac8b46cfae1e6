/**
 * The erasure-coding part of `make bench`: the Reed-Solomon codec's throughput on one core
 * beside SHA-256 measured in the same run, upload and download throughput of the same file under
 * ec:4+2 and replicate:3 on 6 local nodes (also with 2 nodes down), and the storage each costs
 * on disk.
 */
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { decodeBlock, encodeShards } from '@mycel/core'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { RESTART_TIMEOUT_MS } from '../helpers/erasure.js'
import { allAlive } from '../helpers/membership.js'
import { cpuSnapshot } from './proc.js'

const MiB = 1 << 20
const BLOCK = 262_144

export interface ErasureBenchOptions {
  dir: string
  /** The test file and its SHA-256. */
  file: { path: string; size: number; sha: string }
  runs: number
  /** SHA-256 MB/s on one core, measured in this run. */
  shaMBps: number
  log: (msg: string) => void
  /** Registers a cleanup that runs even if the bench fails. */
  onCleanup: (fn: () => Promise<void>) => void
}

const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000)
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN
const fmt = (n: number) =>
  !Number.isFinite(n) ? '—' : Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2)

/**
 * Encode and decode rates of 256 KiB blocks, one operation at a time (so one libuv thread: a
 * per-core rate), in MB/s of block data. Decode rebuilds the first min(K, M) data shards.
 */
async function codecRates(
  k: number,
  m: number,
  totalBytes: number,
): Promise<{ encode: number; decode: number }> {
  const blocks = Array.from({ length: 8 }, () => randomBytes(BLOCK))
  const encoded = await Promise.all(blocks.map((b) => encodeShards(b, k, m)))
  const rounds = Math.max(1, Math.round(totalBytes / BLOCK))
  let t0 = performance.now()
  for (let i = 0; i < rounds; i++) await encodeShards(blocks[i % blocks.length] as Buffer, k, m)
  const encode = mbps(rounds * BLOCK, performance.now() - t0)
  const lost = Math.min(k, m)
  const degraded = encoded.map((shards) => shards.map((s, i) => (i < lost ? undefined : s)))
  t0 = performance.now()
  for (let i = 0; i < rounds; i++) await decodeBlock(degraded[i % degraded.length] ?? [], k, m, BLOCK)
  const decode = mbps(rounds * BLOCK, performance.now() - t0)
  return { encode, decode }
}

async function upload(
  cluster: TestCluster,
  file: ErasureBenchOptions['file'],
  policy: string,
): Promise<{ cid: string; ms: number }> {
  const t0 = performance.now()
  const res = await fetch(`${cluster.gatewayUrl}/mycel/v1/upload?durability=${encodeURIComponent(policy)}`, {
    method: 'POST',
    body: Readable.toWeb(createReadStream(file.path, { highWaterMark: MiB })) as ReadableStream<Uint8Array>,
    duplex: 'half',
  })
  const text = await res.text()
  if (res.status !== 201) throw new Error(`upload ${policy}: ${res.status} ${text.slice(0, 300)}`)
  return { cid: (JSON.parse(text) as { cid: string }).cid, ms: performance.now() - t0 }
}

async function download(
  cluster: TestCluster,
  cid: string,
  file: ErasureBenchOptions['file'],
): Promise<number> {
  const hash = createHash('sha256')
  const t0 = performance.now()
  const res = await fetch(`${cluster.gatewayUrl}/ipfs/${cid}`)
  let bytes = 0
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    hash.update(chunk)
    bytes += chunk.byteLength
  }
  const ms = performance.now() - t0
  const sha = hash.digest('hex')
  if (res.status !== 200 || bytes !== file.size || sha !== file.sha) {
    throw new Error(`download ${cid}: status ${res.status}, ${bytes} bytes, sha256 ${sha}`)
  }
  return mbps(bytes, ms)
}

async function duBytes(path: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(path, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name))).size
  }
  return total
}

interface PolicyResult {
  policy: string
  uploadMBps: number
  downloadMBps: number
  degradedMBps: number
  /** Core-seconds per GiB of the gateway and of all nodes, uploading and downloading (all nodes up). */
  cpu: { upGateway: number; upNodes: number; downGateway: number; downNodes: number }
  /** Block and shard bytes the nodes report holding, per byte uploaded. */
  logical: number
  /** RocksDB files on disk (after a restart flushed the WAL), less an empty cluster's, per byte uploaded. */
  onDisk: number
}

async function measurePolicy(opts: ErasureBenchOptions, policy: string): Promise<PolicyResult> {
  const dataDir = join(opts.dir, `ec-${policy.replace(/[^a-z0-9]/g, '-')}`)
  opts.log(`erasure: ${policy} on 6 nodes`)
  // Nodes killed for the degraded reads stay suspect (no repair meanwhile): reads alone are timed.
  const cluster = await startCluster({ nodes: 6, dataDir, env: { MYCEL_DEAD_AFTER_MS: '600000' } })
  opts.onCleanup(() => cluster.stop())
  const nodeDirs = cluster.nodes.map((_, i) => join(dataDir, `node-${i}`, 'blocks'))
  const emptyDisk = (await Promise.all(nodeDirs.map(duBytes))).reduce((a, b) => a + b, 0)
  const pids: Record<string, number | undefined> = { gateway: cluster.gateway.pid }
  for (const [i, n] of cluster.nodes.entries()) pids[`node-${i}`] = n.pid
  const cpu0 = await cpuSnapshot(pids)
  const up = await upload(cluster, opts.file, policy)
  const uploadMBps = mbps(opts.file.size, up.ms)
  const cpu1 = await cpuSnapshot(pids)
  const downs: number[] = []
  for (let r = 0; r < opts.runs; r++) downs.push(await download(cluster, up.cid, opts.file))
  const cpu2 = await cpuSnapshot(pids)
  const perGiB = (
    a: Record<string, number>,
    b: Record<string, number>,
    which: 'gateway' | 'nodes',
    runs: number,
  ) => {
    const keys = Object.keys(b).filter((key) => (which === 'gateway') === (key === 'gateway'))
    const secs = keys.reduce((t, key) => t + (b[key] ?? 0) - (a[key] ?? 0), 0)
    return secs / runs / (opts.file.size / 1024 ** 3)
  }
  const cpu = {
    upGateway: perGiB(cpu0, cpu1, 'gateway', 1),
    upNodes: perGiB(cpu0, cpu1, 'nodes', 1),
    downGateway: perGiB(cpu1, cpu2, 'gateway', opts.runs),
    downNodes: perGiB(cpu1, cpu2, 'nodes', opts.runs),
  }
  // Two nodes down: ec:4+2 decodes the blocks whose data shards were there; replicate:3 reads the next copy.
  await Promise.all([cluster.nodes[0]!.kill(), cluster.nodes[1]!.kill()])
  const degraded: number[] = []
  for (let r = 0; r < opts.runs; r++) degraded.push(await download(cluster, up.cid, opts.file))
  await Promise.all([cluster.nodes[0]!.start(), cluster.nodes[1]!.start()])
  await allAlive(cluster, RESTART_TIMEOUT_MS)
  const status = (await (await fetch(`${cluster.gatewayUrl}/mycel/v1/status`)).json()) as {
    nodes: Array<{ blockBytes?: number; shardBytes?: number }>
  }
  const logical = status.nodes.reduce((a, n) => a + (n.blockBytes ?? 0) + (n.shardBytes ?? 0), 0)
  // A restart replays and flushes each node's WAL: what remains is the SST files RocksDB keeps.
  await cluster.stop()
  await cluster.start()
  await cluster.stop()
  const onDisk = (await Promise.all(nodeDirs.map(duBytes))).reduce((a, b) => a + b, 0) - emptyDisk
  await rm(dataDir, { recursive: true, force: true })
  opts.log(
    `erasure: ${policy}: upload ${fmt(uploadMBps)} MB/s, download ${downs.map(fmt).join(', ')} MB/s, ` +
      `2 nodes down ${degraded.map(fmt).join(', ')} MB/s; stored ${fmt(logical / opts.file.size)} B/B, on disk ${fmt(onDisk / opts.file.size)} B/B`,
  )
  return {
    policy,
    uploadMBps,
    cpu,
    downloadMBps: median(downs),
    degradedMBps: median(degraded),
    logical: logical / opts.file.size,
    onDisk: onDisk / opts.file.size,
  }
}

/** Runs the erasure-coding measurements and returns their Markdown section. */
export async function benchErasure(opts: ErasureBenchOptions): Promise<string> {
  opts.log('erasure: codec rates')
  const codec: Array<{ code: string; encode: number; decode: number }> = []
  for (const [k, m] of [
    [2, 1],
    [4, 2],
    [6, 3],
  ] as const) {
    const encodes: number[] = []
    const decodes: number[] = []
    for (let r = 0; r < opts.runs; r++) {
      const rate = await codecRates(k, m, 256 * MiB)
      encodes.push(rate.encode)
      decodes.push(rate.decode)
    }
    codec.push({ code: `${k}+${m}`, encode: median(encodes), decode: median(decodes) })
    opts.log(
      `erasure: ${k}+${m} encode ${encodes.map(fmt).join(', ')} MB/s, decode ${decodes.map(fmt).join(', ')} MB/s`,
    )
  }
  const results = [await measurePolicy(opts, 'replicate:3'), await measurePolicy(opts, 'ec:4+2')]
  const size = opts.file.size === 1024 * MiB ? '1 GiB' : `${opts.file.size / MiB} MiB`
  return [
    `Erasure coding (same run; SHA-256 on one core ${fmt(opts.shaMBps)} MB/s)`,
    '',
    '| code | encode MB/s per core | decode (min(K,M) data shards lost) MB/s per core | encode / SHA-256 | decode / SHA-256 |',
    '|---|---:|---:|---:|---:|',
    ...codec.map(
      (c) =>
        `| ${c.code} | ${fmt(c.encode)} | ${fmt(c.decode)} | ${fmt(c.encode / opts.shaMBps)} | ${fmt(c.decode / opts.shaMBps)} |`,
    ),
    '',
    `| ${size} file on 6 nodes | upload MB/s | download MB/s | download, 2 nodes down MB/s | stored bytes per byte | on disk bytes per byte | CPU upload gateway / nodes (core-s per GiB) | CPU download gateway / nodes (core-s per GiB) |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.policy} | ${fmt(r.uploadMBps)} | ${fmt(r.downloadMBps)} | ${fmt(r.degradedMBps)} | ${fmt(r.logical)} | ${fmt(r.onDisk)} | ${fmt(r.cpu.upGateway)} / ${fmt(r.cpu.upNodes)} | ${fmt(r.cpu.downGateway)} / ${fmt(r.cpu.downNodes)} |`,
    ),
    '',
    `- Codec: @ronomon/reed-solomon on 256 KiB blocks, one operation at a time (one libuv thread), MB/s of block data, median of ${opts.runs}.`,
    `- Upload: raw \`POST /mycel/v1/upload?durability=…\`; download \`GET /ipfs/{cid}\` with SHA-256 checked, median of ${opts.runs}; then the same with nodes 0 and 1 SIGKILLed. Both policies on a fresh 6-node cluster sharing this machine.`,
    "- Stored: block and shard bytes the nodes report (GetNodeStats) per byte uploaded; on disk: the nodes' RocksDB directories after a restart (the WAL flushed into SST files), less an empty cluster's, per byte uploaded.",
  ].join('\n')
}
