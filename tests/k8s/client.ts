/**
 * The Kubernetes scenarios' client, run inside a pod of the cluster (`kubectl exec client -- node
 * /scripts/client.mjs ...`): it talks to the gateway through its Service, as an application in the
 * cluster would. Node built-ins only: the compiled file is mounted from a ConfigMap into a pod of
 * the Mycel image.
 *
 *   upload SIZE...        upload random files; prints [{cid, size, sha256}]
 *   verify                read files (JSON list on stdin) and check each by SHA-256; prints {ok, bad}
 *   watch STOPFILE        read the files (stdin) in a loop until STOPFILE exists; prints a summary:
 *                         reads, failures, the slowest good read, every failure window
 *   status                GET /mycel/v1/status
 *
 * GATEWAY_URL names the gateway (default http://mycel-gateway:8080); uploads and status carry
 * MYCEL_TOKEN (the chart's admin token, from its tokens Secret) as a bearer token.
 */
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'

const gateway = process.env.GATEWAY_URL ?? 'http://mycel-gateway:8080'
const auth: Record<string, string> = process.env.MYCEL_TOKEN
  ? { authorization: `Bearer ${process.env.MYCEL_TOKEN}` }
  : {}

interface FileRef {
  cid: string
  size: number
  sha256: string
}

async function stdinJson<T>(): Promise<T> {
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  return JSON.parse(Buffer.concat(chunks).toString()) as T
}

async function upload(sizes: number[]): Promise<FileRef[]> {
  const out: FileRef[] = []
  for (const size of sizes) {
    const body = randomBytes(size)
    const res = await fetch(`${gateway}/mycel/v1/upload`, {
      method: 'POST',
      headers: auth,
      body,
      signal: AbortSignal.timeout(120_000),
    })
    const text = await res.text()
    if (res.status !== 201) throw new Error(`upload of ${size} bytes: ${res.status} ${text.slice(0, 300)}`)
    const { cid } = JSON.parse(text) as { cid: string }
    out.push({ cid, size, sha256: createHash('sha256').update(body).digest('hex') })
  }
  return out
}

/** One read, checked by hash; resolves with an error message or undefined when the bytes are right. */
async function readOne(f: FileRef, timeoutMs: number): Promise<string | undefined> {
  try {
    const res = await fetch(`${gateway}/ipfs/${f.cid}`, { signal: AbortSignal.timeout(timeoutMs) })
    if (res.status !== 200) return `${res.status} ${(await res.text()).slice(0, 200)}`
    const hash = createHash('sha256')
    let size = 0
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk)
      size += chunk.length
    }
    const digest = hash.digest('hex')
    if (digest !== f.sha256) return `wrong bytes: ${size} bytes, sha256 ${digest}`
    return undefined
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } }
    return `${e.name}: ${e.cause?.code ?? e.cause?.message ?? e.message}`
  }
}

async function verify(files: FileRef[]): Promise<{ ok: number; bad: { cid: string; error: string }[] }> {
  const bad: { cid: string; error: string }[] = []
  for (const f of files) {
    const error = await readOne(f, 60_000)
    if (error) bad.push({ cid: f.cid, error })
  }
  return { ok: files.length - bad.length, bad }
}

/**
 * Reads until the stop file appears. A read may take up to 30 s (longer than the gateway's RPC
 * deadline, so a failover inside the gateway is a slow read, not a failed one). A failure window
 * runs from a failed read's start to the end of the next good read.
 */
async function watch(files: FileRef[], stopFile: string) {
  let reads = 0
  let failures = 0
  let slowestMs = 0
  let windowStart: number | undefined
  let lastError = ''
  const windows: { start: string; ms: number; error: string }[] = []
  const started = Date.now()
  for (let i = 0; !existsSync(stopFile); i++) {
    const f = files[i % files.length] as FileRef
    const t = Date.now()
    const error = await readOne(f, 30_000)
    reads++
    if (!error) slowestMs = Math.max(slowestMs, Date.now() - t)
    if (error) {
      failures++
      lastError = error
      windowStart ??= t
      await new Promise((r) => setTimeout(r, 100))
    } else if (windowStart !== undefined) {
      windows.push({
        start: new Date(windowStart).toISOString(),
        ms: Date.now() - windowStart,
        error: lastError,
      })
      windowStart = undefined
    }
  }
  if (windowStart !== undefined) {
    windows.push({
      start: new Date(windowStart).toISOString(),
      ms: Date.now() - windowStart,
      error: `${lastError} (still failing)`,
    })
  }
  return { reads, failures, slowestMs, windows, seconds: (Date.now() - started) / 1000 }
}

async function main(): Promise<void> {
  const [cmd, ...args] = process.argv.slice(2)
  let result: unknown
  if (cmd === 'upload') result = await upload(args.map(Number))
  else if (cmd === 'verify') result = await verify(await stdinJson<FileRef[]>())
  else if (cmd === 'watch') result = await watch(await stdinJson<FileRef[]>(), args[0] ?? '/tmp/stop')
  else if (cmd === 'status') {
    const res = await fetch(`${gateway}/mycel/v1/status`, {
      headers: auth,
      signal: AbortSignal.timeout(30_000),
    })
    result = { httpStatus: res.status, body: await res.json() }
  } else throw new Error(`unknown command ${cmd}`)
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

main().catch((err: Error) => {
  process.stderr.write(`client: ${err.message}\n`)
  process.exit(1)
})
