import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { initKuboRepo, kuboBin, kuboEnv } from '../bench/kubo-vectors.js'

const run = promisify(execFile)

/** A Kubo daemon, offline on loopback in its own repository (see the peers notes). */
export interface KuboDaemon {
  child: ChildProcess
  /** RPC base, e.g. http://127.0.0.1:PORT (commands under /api/v0). */
  apiUrl: string
  gatewayUrl: string
  /** Runs the `ipfs` CLI on this repository (offline commands, or commands through the daemon). */
  ipfs(args: string[], opts?: { input?: Uint8Array }): Promise<Buffer>
  stop(): Promise<void>
}

/** Whether the pinned Kubo is built (`make kubo`); `make test` builds it first. */
export function kuboAvailable(): boolean {
  return existsSync(kuboBin())
}

/**
 * Inits a repository under `dir` and starts `ipfs daemon --offline` on loopback. Kubo binds port 0
 * and the test reads the ports it got from its output: ports chosen beforehand and bound seconds
 * later (after init and config) could be taken meanwhile by another process's listener or by an
 * outgoing connection's local port, and the daemon would exit at start (address already in use).
 */
export async function startKubo(dir: string): Promise<KuboDaemon> {
  const bin = kuboBin()
  const repo = join(dir, 'kubo')
  await initKuboRepo(bin, repo)
  const env = kuboEnv(repo)
  const child = spawn(bin, ['daemon', '--offline'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kubo daemon not ready in 60 s: ${output}`)), 60_000)
    const onData = (d: Buffer) => {
      output += d.toString()
      if (output.includes('Daemon is ready')) {
        clearTimeout(timer)
        resolve()
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`kubo daemon exited (${code}): ${output}`))
    })
  })
  const listening = (server: string): string => {
    const port = new RegExp(`${server} server listening on /ip4/127\\.0\\.0\\.1/tcp/(\\d+)`).exec(output)?.[1]
    if (port === undefined) throw new Error(`kubo daemon: no "${server} server listening" line: ${output}`)
    return `http://127.0.0.1:${port}`
  }
  // Keep draining its output so it never blocks on a full pipe.
  child.stdout?.resume()
  child.stderr?.resume()
  return {
    child,
    apiUrl: listening('RPC API'),
    gatewayUrl: listening('Gateway'),
    async ipfs(args, opts = {}) {
      const p = run(bin, args, { env, timeout: 120_000, maxBuffer: 256 << 20, encoding: 'buffer' })
      if (opts.input !== undefined) p.child.stdin?.end(opts.input)
      return (await p).stdout
    },
    stop: () => stopChild(child),
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopChild(child: ChildProcess, graceMs = 20_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  const signal = (sig: NodeJS.Signals) => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
    try {
      process.kill(child.pid, sig)
    } catch {
      // already gone
    }
  }
  signal('SIGTERM')
  const timer = setTimeout(() => signal('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}
