/**
 * `make bench`: Mycel (3 storage nodes + gateway, local processes) against Kubo 0.43.1 (offline
 * daemon) and against the machine's own limits, all measured in this one run on loopback.
 *
 * Environment:
 *   KUBO_BIN            Kubo binary (default .tools/kubo-0.43.1/ipfs; `make kubo` builds it)
 *   BENCH_BIG_MB        size of the large file in MiB (default 1024)
 *   BENCH_SMALL_FILES   small files per round (default 10000), 4 KiB each
 *   BENCH_RUNS          repetitions of the cheap measurements, medians reported (default 3)
 *   BENCH_TIMEOUT_MIN   the whole run is aborted (and cleaned up) after this (default 45)
 *   BENCH_REPAIR_MB     data held by the node the repair benchmark loses, in MiB (default 256)
 *   BENCH_EC_MB         size of the file of the erasure-coding comparison in MiB (default 256)
 *   BENCH_ONLY=repair   run only the repair benchmark (no Kubo comparison)
 *   BENCH_ONLY=erasure  run only the machine limits and the erasure-coding section
 *
 * Everything lives under .bench/run-XXXX and is removed at the end, on failure too; every process
 * started here is stopped by its PID.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import { constants, createReadStream } from 'node:fs'
import { mkdir, mkdtemp, open, readdir, readFile, rm, rmdir, unlink } from 'node:fs/promises'
import { Agent, type IncomingHttpHeaders, type OutgoingHttpHeaders, request } from 'node:http'
import { connect } from 'node:net'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { startKubo as startKuboDaemon, stopChild } from '../helpers/kubo.js'
import { benchErasure } from './erasure.js'
import { KUBO_VERSION, kuboBin, ROOT } from './kubo-vectors.js'
import { cpuSnapshot } from './proc.js'
import { measureRepair, repairReport } from './repair.js'

const MiB = 1 << 20
const BIG_BYTES = envInt('BENCH_BIG_MB', 1024) * MiB
const SMALL_FILES = envInt('BENCH_SMALL_FILES', 10_000)
const SMALL_SIZE = 4096
const RUNS = envInt('BENCH_RUNS', 3)
const TIMEOUT_MS = envInt('BENCH_TIMEOUT_MIN', 45) * 60_000
const SHA_BYTES = 256 * MiB
const TCP_BYTES = 1024 * MiB
const DISK_BYTES = 1024 * MiB
const DSYNC_WRITES = 2000
const REPAIR_MB = envInt('BENCH_REPAIR_MB', 256)
const EC_BYTES = envInt('BENCH_EC_MB', 256) * MiB
const ONLY = process.env.BENCH_ONLY
if (ONLY !== undefined && ONLY !== '' && ONLY !== 'repair' && ONLY !== 'erasure')
  throw new Error(`BENCH_ONLY must be "repair" or "erasure" (got "${ONLY}")`)

function envInt(name: string, fallback: number): number {
  const v = process.env[name]
  if (v === undefined || v === '') return fallback
  const n = Number(v)
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer (got "${v}")`)
  return n
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const log = (msg: string) =>
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`)

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return Number.NaN
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] as number
}

const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000)

/** Deterministic incompressible bytes (AES-256-CTR keystream keyed by the seed): fast to make. */
function* streamBytes(size: number, seed: string, chunk = 4 * MiB): Generator<Buffer> {
  const key = createHash('sha256').update(seed).digest()
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
  const zeros = Buffer.alloc(Math.min(chunk, Math.max(size, 1)))
  for (let left = size; left > 0; ) {
    const n = Math.min(zeros.length, left)
    yield cipher.update(zeros.subarray(0, n))
    left -= n
  }
}

async function writeBigFile(path: string, size: number, seed: string): Promise<string> {
  const hash = createHash('sha256')
  const fh = await open(path, 'w')
  try {
    for (const chunk of streamBytes(size, seed)) {
      hash.update(chunk)
      await fh.write(chunk)
    }
  } finally {
    await fh.close()
  }
  return hash.digest('hex')
}

function smallFiles(round: number): Buffer[] {
  const all = Buffer.concat([...streamBytes(SMALL_FILES * SMALL_SIZE, `mycel-bench-small-${round}`)])
  return Array.from({ length: SMALL_FILES }, (_, i) => all.subarray(i * SMALL_SIZE, (i + 1) * SMALL_SIZE))
}

async function peakRssMiB(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(status)
    return m ? Number(m[1]) / 1024 : Number.NaN
  } catch {
    return Number.NaN
  }
}

function cpuDelta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(b)) out[k] = v - (a[k] ?? Number.NaN)
  return out
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0)

/** Lets the kernel write back what earlier phases left dirty, so it is not billed to the next. */
function syncDisks(): void {
  spawnSync('sync', { stdio: 'ignore', timeout: 120_000 })
}

// ---------------------------------------------------------------------------------------------
// HTTP over one keep-alive connection (node:http, no client-side parsing beyond the basics)

interface Reply {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
  bytes: number
}

interface CallOptions {
  agent: Agent
  method: 'GET' | 'POST'
  headers?: OutgoingHttpHeaders
  body?: Buffer | Readable
  /** Receives the response body instead of collecting it. */
  sink?: (chunk: Buffer) => void
  timeoutMs?: number
}

function call(url: string, opts: CallOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method, agent: opts.agent, headers: opts.headers }, (res) => {
      const chunks: Buffer[] = []
      let bytes = 0
      res.on('data', (c: Buffer) => {
        bytes += c.length
        if (opts.sink) opts.sink(c)
        else chunks.push(c)
      })
      res.once('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), bytes }),
      )
      res.once('error', reject)
    })
    req.setTimeout(opts.timeoutMs ?? 300_000, () => req.destroy(new Error(`timeout: ${opts.method} ${url}`)))
    req.once('error', reject)
    const body = opts.body
    if (body === undefined) req.end()
    else if (Buffer.isBuffer(body)) req.end(body)
    else {
      body.once('error', (err) => req.destroy(err))
      body.pipe(req)
    }
  })
}

const keepAlive = () => new Agent({ keepAlive: true, maxSockets: 1 })

/** A multipart/form-data body with one file part, as Kubo's clients send to /api/v0/add. */
function multipart(name: string, size: number): { headers: OutgoingHttpHeaders; head: Buffer; tail: Buffer } {
  const boundary = `----mycel-bench-${randomBytes(8).toString('hex')}`
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\n` +
      'Content-Type: application/octet-stream\r\n\r\n',
  )
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`)
  return {
    head,
    tail,
    headers: {
      'Content-Type': `multipart/form-data; boundary=${boundary}`,
      'Content-Length': head.length + size + tail.length,
    },
  }
}

function multipartFromFile(path: string, size: number): { headers: OutgoingHttpHeaders; body: Readable } {
  const { head, tail, headers } = multipart('big.bin', size)
  async function* parts(): AsyncGenerator<Buffer> {
    yield head
    for await (const c of createReadStream(path, { highWaterMark: MiB })) yield c as Buffer
    yield tail
  }
  return { headers, body: Readable.from(parts()) }
}

function lastJsonLine(body: Buffer): Record<string, unknown> {
  const lines = body.toString().trim().split('\n')
  return JSON.parse(lines[lines.length - 1] ?? '{}') as Record<string, unknown>
}

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: everything started here is stopped here, by PID

const cleanups: Array<() => Promise<void>> = []
/** This run's directory under .bench (removed at the end). */
let runDir: string | undefined
let cleaning: Promise<void> | undefined

function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const fn = cleanups.pop()
      try {
        await fn?.()
      } catch (err) {
        log(`cleanup: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
  })()
  return cleaning
}

// ---------------------------------------------------------------------------------------------
// The machine's limits

/** A trivial HTTP server (4 KiB GET, small JSON for POST) and a TCP sink, in a child process. */
const TRIVIAL_SERVER = `
const http = require('node:http'), net = require('node:net')
const page = Buffer.alloc(${SMALL_SIZE}, 7)
const h = http.createServer((req, res) => {
  if (req.method === 'POST') {
    let n = 0
    req.on('data', (d) => { n += d.length })
    req.on('end', () => { res.setHeader('Content-Type', 'application/json'); res.end(JSON.stringify({ Hash: 'x', Size: String(n) }) + '\\n') })
  } else { res.setHeader('Content-Length', page.length); res.end(page) }
})
h.keepAliveTimeout = 65000
const t = net.createServer((s) => { let n = 0; s.on('data', (d) => { n += d.length }); s.on('end', () => s.end(String(n))) })
h.listen(0, '127.0.0.1', () => t.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ http: h.address().port, tcp: t.address().port }))))
`

async function startTrivialServer(): Promise<{ http: number; tcp: number; child: ChildProcess }> {
  const child = spawn(process.execPath, ['-e', TRIVIAL_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] })
  cleanups.push(() => stopChild(child, 5000))
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('trivial server did not start')), 10_000)
    child.stdout?.once('data', (d: Buffer) => {
      clearTimeout(timer)
      resolve(d.toString())
    })
    child.once('exit', (code) => reject(new Error(`trivial server exited (${code})`)))
  })
  const ports = JSON.parse(line) as { http: number; tcp: number }
  return { ...ports, child }
}

function sha256Rate(): number {
  const buf = randomBytes(MiB)
  const hash = createHash('sha256')
  const t0 = performance.now()
  for (let done = 0; done < SHA_BYTES; done += buf.length) hash.update(buf)
  hash.digest()
  return mbps(SHA_BYTES, performance.now() - t0)
}

async function tcpRate(port: number): Promise<number> {
  const buf = randomBytes(MiB)
  const t0 = performance.now()
  await new Promise<void>((resolve, reject) => {
    const sock = connect(port, '127.0.0.1')
    sock.once('error', reject)
    let reply = ''
    sock.on('data', (d: Buffer) => {
      reply += d.toString()
    })
    sock.once('end', () => {
      if (Number(reply) !== TCP_BYTES) reject(new Error(`tcp sink got ${reply} bytes`))
      else resolve()
    })
    let sent = 0
    const pump = () => {
      while (sent < TCP_BYTES) {
        sent += buf.length
        if (!sock.write(buf)) {
          sock.once('drain', pump)
          return
        }
      }
      sock.end()
    }
    sock.once('connect', pump)
  })
  return mbps(TCP_BYTES, performance.now() - t0)
}

async function diskRate(dir: string): Promise<number> {
  const path = join(dir, 'disk-test.bin')
  const buf = randomBytes(8 * MiB)
  const t0 = performance.now()
  const fh = await open(path, 'w')
  try {
    for (let done = 0; done < DISK_BYTES; done += buf.length) await fh.write(buf)
    await fh.datasync()
  } finally {
    await fh.close()
  }
  const ms = performance.now() - t0
  await unlink(path)
  return mbps(DISK_BYTES, ms)
}

async function dsyncRate(dir: string): Promise<number> {
  const path = join(dir, 'dsync-test.bin')
  const buf = randomBytes(SMALL_SIZE)
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_DSYNC | constants.O_APPEND)
  const t0 = performance.now()
  try {
    for (let i = 0; i < DSYNC_WRITES; i++) await fh.write(buf)
  } finally {
    await fh.close()
  }
  const ms = performance.now() - t0
  await unlink(path)
  return DSYNC_WRITES / (ms / 1000)
}

// ---------------------------------------------------------------------------------------------
// What is measured on Mycel and Kubo alike

interface Target {
  name: string
  /** Where uploads go (Mycel: the gateway; Kubo: its RPC API). */
  apiUrl: string
  /** Where /ipfs/{cid} is served. */
  gatewayUrl: string
  bigUpload(path: string, size: number, agent: Agent): Promise<string>
}

interface SystemResult {
  bigCid: string
  uploadMBps: number
  downloadMBps: number
  addRate: number
  addP50: number
  addP99: number
  getRate: number
  getP50: number
  getP99: number
  smallCids: string[]
  rss: Record<string, number>
  /** CPU seconds per process, per phase. */
  cpu: Record<'upload' | 'download' | 'add' | 'get', Record<string, number>>
}

async function download(url: string, agent: Agent, expectSha: string, expectBytes: number): Promise<number> {
  const hash = createHash('sha256')
  const t0 = performance.now()
  const res = await call(url, { agent, method: 'GET', sink: (c) => hash.update(c) })
  const ms = performance.now() - t0
  const digest = hash.digest('hex')
  if (res.status !== 200 || res.bytes !== expectBytes || digest !== expectSha) {
    throw new Error(
      `GET ${url}: status ${res.status}, ${res.bytes} bytes, sha256 ${digest} (want ${expectSha})`,
    )
  }
  return mbps(expectBytes, ms)
}

/** Adds the files one by one on one keep-alive connection: files/s and per-request latency (ms). */
async function addSmall(
  apiUrl: string,
  files: Buffer[],
): Promise<{ rate: number; lat: number[]; cids: string[] }> {
  const agent = keepAlive()
  const lat: number[] = []
  const cids: string[] = []
  const t0 = performance.now()
  try {
    for (let i = 0; i < files.length; i++) {
      const file = files[i] as Buffer
      const { head, tail, headers } = multipart(`f${i}.bin`, file.length)
      const s = performance.now()
      const res = await call(`${apiUrl}/api/v0/add?cid-version=1&quieter=true`, {
        agent,
        method: 'POST',
        headers,
        body: Buffer.concat([head, file, tail]),
        timeoutMs: 60_000,
      })
      lat.push(performance.now() - s)
      if (res.status !== 200) throw new Error(`add #${i}: ${res.status} ${res.body.toString().slice(0, 500)}`)
      cids.push(String(lastJsonLine(res.body).Hash))
    }
  } finally {
    agent.destroy()
  }
  return { rate: files.length / ((performance.now() - t0) / 1000), lat: lat.sort((a, b) => a - b), cids }
}

/** GETs every CID once on one keep-alive connection, checking the bytes. */
async function getSmall(
  gatewayUrl: string,
  cids: string[],
  files: Buffer[] | undefined,
): Promise<{ rate: number; p50: number; p99: number }> {
  const agent = keepAlive()
  const lat: number[] = []
  const t0 = performance.now()
  try {
    for (let i = 0; i < cids.length; i++) {
      const s = performance.now()
      const res = await call(`${gatewayUrl}/ipfs/${cids[i]}`, { agent, method: 'GET', timeoutMs: 60_000 })
      lat.push(performance.now() - s)
      const want = files?.[i]
      if (res.status !== 200 || (want !== undefined && !res.body.equals(want))) {
        throw new Error(`GET /ipfs/${cids[i]}: status ${res.status}, ${res.bytes} bytes, content mismatch`)
      }
    }
  } finally {
    agent.destroy()
  }
  lat.sort((a, b) => a - b)
  return {
    rate: cids.length / ((performance.now() - t0) / 1000),
    p50: percentile(lat, 0.5),
    p99: percentile(lat, 0.99),
  }
}

async function measure(
  target: Target,
  big: { path: string; sha: string },
  pids: Record<string, number | undefined>,
): Promise<SystemResult> {
  syncDisks()
  log(`${target.name}: upload ${BIG_BYTES / MiB} MiB`)
  const agent = keepAlive()
  const cpu0 = await cpuSnapshot(pids)
  let cpu1: Record<string, number>
  let bigCid: string
  let uploadMBps: number
  let downloadMBps: number
  try {
    const t0 = performance.now()
    bigCid = await target.bigUpload(big.path, BIG_BYTES, agent)
    uploadMBps = mbps(BIG_BYTES, performance.now() - t0)
    cpu1 = await cpuSnapshot(pids)
    log(`${target.name}: ${uploadMBps.toFixed(0)} MB/s -> ${bigCid}`)
    const downs: number[] = []
    for (let r = 0; r < RUNS; r++) {
      downs.push(await download(`${target.gatewayUrl}/ipfs/${bigCid}`, agent, big.sha, BIG_BYTES))
    }
    log(`${target.name}: download ${downs.map((d) => d.toFixed(0)).join(', ')} MB/s (sha-256 checked)`)
    downloadMBps = median(downs)
  } finally {
    agent.destroy()
  }
  const cpu2 = await cpuSnapshot(pids)
  syncDisks()
  const cpu3 = await cpuSnapshot(pids)
  const adds: Array<{ rate: number; p50: number; p99: number }> = []
  let firstRound: { cids: string[]; files: Buffer[] } | undefined
  for (let r = 0; r < RUNS; r++) {
    const files = smallFiles(r)
    const res = await addSmall(target.apiUrl, files)
    adds.push({ rate: res.rate, p50: percentile(res.lat, 0.5), p99: percentile(res.lat, 0.99) })
    log(`${target.name}: add ${files.length} x 4 KiB round ${r + 1}: ${res.rate.toFixed(0)} files/s`)
    firstRound ??= { cids: res.cids, files }
  }
  if (firstRound === undefined) throw new Error('no small-file round ran')
  const cpu4 = await cpuSnapshot(pids)
  const gets: Array<{ rate: number; p50: number; p99: number }> = []
  for (let r = 0; r < RUNS; r++) {
    const g = await getSmall(target.gatewayUrl, firstRound.cids, firstRound.files)
    gets.push(g)
    log(
      `${target.name}: GET pass ${r + 1}: ${g.rate.toFixed(0)}/s p50 ${g.p50.toFixed(2)} ms p99 ${g.p99.toFixed(2)} ms`,
    )
  }
  const cpu5 = await cpuSnapshot(pids)
  const rss: Record<string, number> = {}
  for (const [name, pid] of Object.entries(pids)) rss[name] = await peakRssMiB(pid)
  return {
    bigCid,
    uploadMBps,
    downloadMBps,
    addRate: median(adds.map((a) => a.rate)),
    addP50: median(adds.map((a) => a.p50)),
    addP99: median(adds.map((a) => a.p99)),
    getRate: median(gets.map((g) => g.rate)),
    getP50: median(gets.map((g) => g.p50)),
    getP99: median(gets.map((g) => g.p99)),
    smallCids: firstRound.cids,
    rss,
    cpu: {
      upload: cpuDelta(cpu0, cpu1),
      download: cpuDelta(cpu1, cpu2),
      add: cpuDelta(cpu3, cpu4),
      get: cpuDelta(cpu4, cpu5),
    },
  }
}

// ---------------------------------------------------------------------------------------------
// The two systems

function mycelTarget(cluster: TestCluster): Target {
  return {
    name: 'mycel',
    apiUrl: cluster.gatewayUrl,
    gatewayUrl: cluster.gatewayUrl,
    async bigUpload(path, size, agent) {
      const res = await call(`${cluster.gatewayUrl}/mycel/v1/upload?cid-version=1`, {
        agent,
        method: 'POST',
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': size },
        body: createReadStream(path, { highWaterMark: MiB }),
      })
      const body = lastJsonLine(res.body)
      if (res.status !== 201 || body.size !== size) {
        throw new Error(`mycel upload: ${res.status} ${res.body.toString().slice(0, 500)}`)
      }
      return String(body.cid)
    },
  }
}

async function startKubo(dir: string): Promise<{ child: ChildProcess; target: Target }> {
  const kubo = await startKuboDaemon(dir)
  const child = kubo.child
  cleanups.push(() => kubo.stop())
  const apiUrl = kubo.apiUrl
  return {
    child,
    target: {
      name: 'kubo',
      apiUrl,
      gatewayUrl: kubo.gatewayUrl,
      async bigUpload(path, size, agent) {
        const { headers, body } = multipartFromFile(path, size)
        const res = await call(`${apiUrl}/api/v0/add?cid-version=1&quieter=true`, {
          agent,
          method: 'POST',
          headers,
          body,
        })
        if (res.status !== 200)
          throw new Error(`kubo add: ${res.status} ${res.body.toString().slice(0, 500)}`)
        return String(lastJsonLine(res.body).Hash)
      },
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Report

/** Warning and error lines in the services' JSON logs (pino level labels), a few distinct messages. */
async function logWarnings(logDir: string): Promise<{ count: number; samples: string[] }> {
  let count = 0
  const samples = new Map<string, string>()
  let names: string[] = []
  try {
    names = await readdir(logDir)
  } catch {
    return { count, samples: [] }
  }
  for (const name of names) {
    const text = await readFile(join(logDir, name), 'utf8')
    for (const line of text.split('\n')) {
      const m = /"level":"(warn|error|fatal)"/.exec(line)
      if (m === null) continue
      count++
      let msg = line
      try {
        const rec = JSON.parse(line) as { msg?: string; component?: string }
        msg = `${m[1]} ${rec.component ?? ''} ${rec.msg ?? ''}`
      } catch {
        // not JSON; keep the raw line
      }
      if (!samples.has(msg) && samples.size < 5) samples.set(msg, `${name}: ${line.slice(0, 400)}`)
    }
  }
  return { count, samples: [...samples.values()] }
}

interface Limits {
  sha: number
  tcp: number
  disk: number
  dsync: number
  postRate: number
  postP50: number
  postP99: number
  getRate: number
  getP50: number
  getP99: number
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return '—'
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US')
  if (Math.abs(n) >= 10) return n.toFixed(1)
  return n.toFixed(2)
}

const ratio = (a: number, b: number) =>
  Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(2)}` : '—'

/** Core-milliseconds per small-file request over all rounds. */
function perSmall(cpu: Record<string, number>): number {
  return (sum(cpu) / (RUNS * SMALL_FILES)) * 1000
}

function report(limits: Limits, mycel: SystemResult, kubo: SystemResult): string {
  const bigLabel = BIG_BYTES === 1024 * MiB ? '1 GiB' : `${BIG_BYTES / MiB} MiB`
  const n = SMALL_FILES.toLocaleString('en-US')
  const rows: Array<[string, number, number, number]> = [
    [
      `${bigLabel} upload (MB/s)`,
      mycel.uploadMBps,
      kubo.uploadMBps,
      Math.min(limits.sha, limits.tcp, limits.disk),
    ],
    [
      `${bigLabel} download, SHA-256 checked (MB/s)`,
      mycel.downloadMBps,
      kubo.downloadMBps,
      Math.min(limits.sha, limits.tcp),
    ],
    [
      `4 KiB add, one connection (files/s)`,
      mycel.addRate,
      kubo.addRate,
      Math.min(limits.postRate, limits.dsync),
    ],
    ['4 KiB add latency p50 (ms)', mycel.addP50, kubo.addP50, limits.postP50],
    ['4 KiB add latency p99 (ms)', mycel.addP99, kubo.addP99, limits.postP99],
    ['4 KiB GET, one connection (req/s)', mycel.getRate, kubo.getRate, limits.getRate],
    ['4 KiB GET latency p50 (ms)', mycel.getP50, kubo.getP50, limits.getP50],
    ['4 KiB GET latency p99 (ms)', mycel.getP99, kubo.getP99, limits.getP99],
    [
      `CPU, ${bigLabel} upload (core-s)`,
      sum(mycel.cpu.upload),
      sum(kubo.cpu.upload),
      BIG_BYTES / 1e6 / limits.sha,
    ],
    [
      `CPU, ${bigLabel} download (core-s)`,
      sum(mycel.cpu.download) / RUNS,
      sum(kubo.cpu.download) / RUNS,
      Number.NaN,
    ],
    ['CPU per 4 KiB add (core-ms)', perSmall(mycel.cpu.add), perSmall(kubo.cpu.add), Number.NaN],
    ['CPU per 4 KiB GET (core-ms)', perSmall(mycel.cpu.get), perSmall(kubo.cpu.get), Number.NaN],
  ]
  const mycelNodes = Object.entries(mycel.rss).filter(([k]) => k.startsWith('node'))
  const mycelTotal = Object.values(mycel.rss).reduce((a, b) => a + b, 0)
  const largestNode = Math.max(...mycelNodes.map(([, v]) => v))
  const lines = [
    '| metric | Mycel | Kubo | machine limit | Mycel/Kubo | Mycel/limit |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows.map(
      ([name, m, k, l]) =>
        `| ${name} | ${fmt(m)} | ${fmt(k)} | ${fmt(l)} | ${ratio(m, k)} | ${ratio(m, l)} |`,
    ),
    `| peak RSS, all processes (MiB) | ${fmt(mycelTotal)} | ${fmt(kubo.rss.daemon ?? Number.NaN)} | — | ${ratio(mycelTotal, kubo.rss.daemon ?? Number.NaN)} | — |`,
    `| peak RSS, gateway / largest node (MiB) | ${fmt(mycel.rss.gateway ?? Number.NaN)} / ${fmt(largestNode)} | — | — | — | — |`,
  ]
  const smallSame = mycel.smallCids.filter((c, i) => c === kubo.smallCids[i]).length
  const notes = [
    '',
    `Machine limits (same run, median of ${RUNS}): SHA-256 ${fmt(limits.sha)} MB/s (one core, node:crypto, ` +
      `${SHA_BYTES / MiB} MiB); loopback TCP copy ${fmt(limits.tcp)} MB/s (${TCP_BYTES / MiB} MiB to another ` +
      `process); sequential write + fdatasync ${fmt(limits.disk)} MB/s (${DISK_BYTES / MiB} MiB); 4 KiB O_DSYNC ` +
      `appends ${fmt(limits.dsync)}/s; a trivial keep-alive Node HTTP server in another process: 4 KiB POST ` +
      `${fmt(limits.postRate)}/s (p50 ${fmt(limits.postP50)} ms, p99 ${fmt(limits.postP99)} ms), 4 KiB GET ` +
      `${fmt(limits.getRate)}/s (p50 ${fmt(limits.getP50)} ms, p99 ${fmt(limits.getP99)} ms).`,
    '',
    `- Upload limit = min(SHA-256, TCP, disk) for ONE copy. Mycel acknowledges an upload only when ` +
      'every block is synced to the WAL on 2 of its 3 nodes (write quorum; the third copy follows), and ' +
      'all 3 replicas share this one disk and these 2 cores. Kubo syncs its leveldb journal per add but ' +
      'does not fsync block files (flatfs sync=false): its writes are not durable when acknowledged.',
    `- Upload: Mycel raw \`POST /mycel/v1/upload?cid-version=1\`; Kubo RPC \`/api/v0/add?cid-version=1\` ` +
      '(multipart), both streamed from the same file (page cache). One run each. Download: `GET /ipfs/{cid}` ' +
      `from each gateway, SHA-256 checked by the client, median of ${RUNS}.`,
    `- Small files: ${n} distinct 4 KiB files per round, each one \`POST /api/v0/add?cid-version=1\` ` +
      `(multipart) on one keep-alive connection, median of ${RUNS} rounds (different files each round); then ` +
      `GET of the first round's ${n} CIDs, bytes checked, median of ${RUNS} passes.`,
    `- CID parity: ${bigLabel} file Mycel ${mycel.bigCid} / Kubo ${kubo.bigCid} ` +
      `(${mycel.bigCid === kubo.bigCid ? 'same' : 'DIFFERENT'}); 4 KiB files: ${smallSame} of ${mycel.smallCids.length} the same.`,
    `- Peak RSS is VmHWM of each process: Mycel ${Object.entries(mycel.rss)
      .map(([k, v]) => `${k} ${fmt(v)}`)
      .join(', ')} MiB; Kubo daemon ${fmt(kubo.rss.daemon ?? Number.NaN)} MiB.`,
    `- CPU is user+system time of the server processes (/proc/PID/stat) during each phase; the upload limit ` +
      `is one SHA-256 pass over the file. Mycel by process: ${(['upload', 'download', 'add', 'get'] as const)
        .map(
          (phase) =>
            `${phase} gateway ${fmt(mycel.cpu[phase].gateway ?? Number.NaN)} s, nodes ${fmt(sum(mycel.cpu[phase]) - (mycel.cpu[phase].gateway ?? 0))} s`,
        )
        .join('; ')} (download and GET: all ${RUNS} runs; add: all ${RUNS} rounds).`,
    '- For latency, CPU and RSS lower is better; for rates higher is better.',
  ]
  return [...lines, ...notes].join('\n')
}

// ---------------------------------------------------------------------------------------------

async function measureLimits(dir: string): Promise<Limits> {
  log('machine limits')
  const trivial = await startTrivialServer()
  const sha: number[] = []
  const tcp: number[] = []
  const disk: number[] = []
  const dsync: number[] = []
  const posts: Array<{ rate: number; p50: number; p99: number }> = []
  const gets: Array<{ rate: number; p50: number; p99: number }> = []
  const payload = smallFiles(99)
  const url = `http://127.0.0.1:${trivial.http}`
  for (let r = 0; r < RUNS; r++) {
    sha.push(sha256Rate())
    tcp.push(await tcpRate(trivial.tcp))
    syncDisks()
    disk.push(await diskRate(dir))
    dsync.push(await dsyncRate(dir))
    const p = await addSmall(url, payload)
    posts.push({ rate: p.rate, p50: percentile(p.lat, 0.5), p99: percentile(p.lat, 0.99) })
    gets.push(await getSmall(url, p.cids, undefined))
    log(
      `limits run ${r + 1}: sha ${fmt(sha[r] ?? 0)} MB/s, tcp ${fmt(tcp[r] ?? 0)} MB/s, disk ${fmt(disk[r] ?? 0)} MB/s, ` +
        `dsync ${fmt(dsync[r] ?? 0)}/s, http post ${fmt(p.rate)}/s, get ${fmt(gets[r]?.rate ?? 0)}/s`,
    )
  }
  await stopChild(trivial.child, 5000)
  return {
    sha: median(sha),
    tcp: median(tcp),
    disk: median(disk),
    dsync: median(dsync),
    postRate: median(posts.map((p) => p.rate)),
    postP50: median(posts.map((p) => p.p50)),
    postP99: median(posts.map((p) => p.p99)),
    getRate: median(gets.map((g) => g.rate)),
    getP50: median(gets.map((g) => g.p50)),
    getP99: median(gets.map((g) => g.p99)),
  }
}

async function main(): Promise<void> {
  const started = Date.now()
  const loadAtStart = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')
  if ((loadavg()[0] ?? 0) > 0.5)
    log(`load average is ${loadAtStart}: other work on this machine skews the figures`)
  const benchRoot = join(ROOT, '.bench')
  await mkdir(benchRoot, { recursive: true })
  const dir = await mkdtemp(join(benchRoot, 'run-'))
  runDir = dir
  cleanups.push(async () => {
    await rm(dir, { recursive: true, force: true })
    await rmdir(benchRoot).catch(() => undefined) // only when nothing else is in it
  })
  const repair = () =>
    measureRepair({
      dir,
      heldMiB: REPAIR_MB,
      writeFile: writeBigFile,
      log,
      onCleanup: (fn) => cleanups.push(fn),
    })
  if (ONLY === 'repair') {
    process.stdout.write(`${repairReport(await repair(), fmt)}\n`)
    return
  }
  const bin = kuboBin()
  const version = spawnSync(bin, ['version', '--number'], { encoding: 'utf8' })
  if (ONLY !== 'erasure' && version.stdout?.trim() !== KUBO_VERSION) {
    throw new Error(
      `${bin} is not Kubo ${KUBO_VERSION} (${version.error?.message ?? version.stdout}); run make kubo`,
    )
  }

  const limits = await measureLimits(dir)

  const ecPath = join(dir, 'ec.bin')
  const ecSection = await benchErasure({
    dir,
    file: { path: ecPath, size: EC_BYTES, sha: await writeBigFile(ecPath, EC_BYTES, 'mycel-bench-ec') },
    runs: RUNS,
    shaMBps: limits.sha,
    log,
    onCleanup: (fn) => {
      cleanups.push(fn)
    },
  })
  await rm(ecPath, { force: true })
  if (ONLY === 'erasure') {
    process.stdout.write(`\n${ecSection}\n`)
    return
  }

  log(`writing ${BIG_BYTES / MiB} MiB test file`)
  const bigPath = join(dir, 'big.bin')
  const big = { path: bigPath, sha: await writeBigFile(bigPath, BIG_BYTES, 'mycel-bench-big') }

  log('starting Mycel: 3 nodes + gateway')
  const cluster = await startCluster({ nodes: 3, dataDir: join(dir, 'mycel') })
  cleanups.push(() => cluster.stop())
  const mycelPids: Record<string, number | undefined> = { gateway: cluster.gateway.pid }
  cluster.nodes.forEach((n, i) => {
    mycelPids[`node-${i}`] = n.pid
  })
  const mycel = await measure(mycelTarget(cluster), big, mycelPids)
  await cluster.stop()
  const mycelWarnings = await logWarnings(join(dir, 'mycel', 'logs'))
  await rm(join(dir, 'mycel'), { recursive: true, force: true })

  log(`starting Kubo ${KUBO_VERSION} (offline daemon)`)
  const kuboProc = await startKubo(dir)
  const kubo = await measure(kuboProc.target, big, { daemon: kuboProc.child.pid })
  await stopChild(kuboProc.child)

  log(`repair: losing one node holding ${REPAIR_MB} MiB`)
  const repaired = await repair()

  const text = `${report(limits, mycel, kubo)}\n${repairReport(repaired, fmt)}`
  const header =
    `\nMycel vs Kubo ${KUBO_VERSION} vs this machine (${new Date().toISOString().slice(0, 10)}, ` +
    `${cpus().length} cores, Node ${process.versions.node}; load average ${loadAtStart} at the start; ` +
    `run took ${Math.round((Date.now() - started) / 1000)} s)\n\n`
  const warn =
    mycelWarnings.count === 0
      ? '- Mycel logged no warnings or errors during the run.'
      : `- Mycel logged ${mycelWarnings.count} warning/error lines, e.g.:\n${mycelWarnings.samples.map((l) => `  - \`${l}\``).join('\n')}`
  process.stdout.write(`${header}${text}\n${warn}\n\n${ecSection}\n`)
}

const deadline = setTimeout(() => {
  log(`time limit (${TIMEOUT_MS / 60_000} min) reached; stopping everything`)
  void cleanupAll().finally(() => process.exit(2))
}, TIMEOUT_MS)
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: stopping everything`)
    void cleanupAll().finally(() => process.exit(130))
  })
}

main()
  .then(async () => {
    await cleanupAll()
    clearTimeout(deadline)
  })
  .catch(async (err: unknown) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    if (runDir !== undefined) {
      // The logs go with the run directory: show what Mycel complained about first.
      const w = await logWarnings(join(runDir, 'mycel', 'logs'))
      for (const line of w.samples) log(`mycel log: ${line}`)
    }
    await cleanupAll()
    clearTimeout(deadline)
    process.exitCode = 1
  })
