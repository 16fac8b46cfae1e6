import { type SpawnOptions, spawn } from 'node:child_process'
import { poll } from '../helpers/poll.js'

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

export interface RunOptions {
  /** Written to the child's stdin, then stdin is closed. */
  input?: string | Buffer
  timeoutMs?: number
  env?: NodeJS.ProcessEnv
  cwd?: string
}

/** Runs a command to completion and collects its output; never throws for a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const spawnOpts: SpawnOptions = { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env }
    if (opts.cwd) spawnOpts.cwd = opts.cwd
    const child = spawn(cmd, args, spawnOpts)
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout?.on('data', (d: Buffer) => out.push(d))
    child.stderr?.on('data', (d: Buffer) => err.push(d))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000)
    child.once('error', (e) => {
      clearTimeout(timer)
      reject(new Error(`${cmd}: ${e.message}`))
    })
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() })
    })
    child.stdin?.on('error', () => undefined)
    child.stdin?.end(opts.input)
  })
}

/** Like run, but throws with the command's stderr when it exits non-zero. */
export async function must(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, opts)
  if (r.code !== 0) {
    const detail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-15).join('\n')
    throw new Error(`${[cmd, ...args].join(' ').slice(0, 300)} exited ${r.code}: ${detail}`)
  }
  return r.stdout
}

/** poll (tests/helpers/poll.ts) with false as "not yet" too, every second by default. */
export function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs: number,
  intervalMs = 1000,
): Promise<T> {
  return poll(
    what,
    timeoutMs,
    async () => {
      const v = await fn()
      return v === false ? undefined : v
    },
    intervalMs,
  )
}

export const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

export function log(msg: string): void {
  process.stdout.write(`[k8s ${new Date().toISOString().slice(11, 19)}] ${msg}\n`)
}
