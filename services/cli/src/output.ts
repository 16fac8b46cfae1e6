import { readFileSync } from 'node:fs'
import { isMycelError } from '@mycel/core'
import { httpStatusOf } from '@mycel/proto'
import { MycelClient } from '@mycel/sdk'
import { Presets, SingleBar } from 'cli-progress'
import type { Command } from 'commander'

/**
 * Exit codes of the `mycel` client commands (documented in README.md):
 * 0 success; 1 usage or invalid input (bad option, CID, path; not a file...); 2 not found;
 * 3 unavailable (no node reachable, quorum not reached, timeout); 4 authentication or permission;
 * 5 any other failure; 130 interrupted.
 */
export const EXIT = {
  OK: 0,
  USAGE: 1,
  NOT_FOUND: 2,
  UNAVAILABLE: 3,
  AUTH: 4,
  FAILED: 5,
  INTERRUPTED: 130,
} as const

/** The exit code for an error, from the HTTP class of its Mycel code (the shared error table). */
export function exitCodeOf(err: unknown): number {
  const errno = (err as NodeJS.ErrnoException)?.code
  if (!isMycelError(err)) {
    if (errno === 'ENOENT') return EXIT.NOT_FOUND
    if (errno === 'EEXIST' || errno === 'ENOTDIR' || errno === 'EISDIR') return EXIT.USAGE
    if (err instanceof UsageError) return EXIT.USAGE
    return EXIT.FAILED
  }
  const http = httpStatusOf(err)
  if (http === 404) return EXIT.NOT_FOUND
  if (http === 401 || http === 403) return EXIT.AUTH
  if (http === 503 || http === 504) return EXIT.UNAVAILABLE
  if (http >= 400 && http < 500) return EXIT.USAGE
  return EXIT.FAILED
}

/** A mistake on the command line found after parsing (a bad value). */
export class UsageError extends Error {
  override name = 'UsageError'
}

export interface GlobalOptions {
  node: string
  token?: string
  tls?: boolean
  ca?: string
  tlsServerName?: string
  timeout?: string
  json?: boolean
  progress: boolean
}

/** The options every client command shares, added to the program (valid before or after the verb). */
export function addGlobalOptions(program: Command): Command {
  return program
    .option(
      '--node <host:port[,host:port]>',
      'storage nodes to talk to, tried in order (env MYCEL_NODES)',
      process.env.MYCEL_NODES || '127.0.0.1:7070',
    )
    .option(
      '--token <token>',
      'bearer token, when the nodes require one (env MYCEL_TOKEN)',
      process.env.MYCEL_TOKEN,
    )
    .option('--tls', 'use TLS, trusting the system CAs (env MYCEL_TLS=1)', process.env.MYCEL_TLS === '1')
    .option(
      '--ca <file>',
      'use TLS, trusting this PEM CA bundle (env MYCEL_CA_FILE)',
      process.env.MYCEL_CA_FILE,
    )
    .option('--tls-server-name <name>', 'name to expect in the nodes’ certificates')
    .option(
      '--timeout <ms>',
      'deadline of short operations in ms (env MYCEL_TIMEOUT_MS)',
      process.env.MYCEL_TIMEOUT_MS,
    )
    .option('--json', 'machine-readable JSON output')
    .option('--no-progress', 'no progress bar (none is drawn when stderr is not a terminal)')
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions
}

export function clientFor(cmd: Command): MycelClient {
  const g = globals(cmd)
  const timeoutMs = g.timeout === undefined ? undefined : positiveInt(g.timeout, '--timeout')
  const tls =
    g.ca !== undefined
      ? { ca: readFileSync(g.ca), serverName: g.tlsServerName }
      : g.tls
        ? { serverName: g.tlsServerName }
        : undefined
  return new MycelClient({ nodes: g.node, token: g.token, tls, timeoutMs })
}

export function positiveInt(text: string, what: string, allowZero = false): number {
  const n = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || (!allowZero && n === 0)) {
    throw new UsageError(
      `${what} must be a ${allowZero ? 'non-negative' : 'positive'} integer (got "${text}")`,
    )
  }
  return n
}

/** Prints `value` as JSON with --json, else the human text. */
export function print(cmd: Command, value: unknown, human: () => string): void {
  if (globals(cmd).json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
  else {
    const text = human()
    if (text !== '') process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${Math.round(n)} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`
}

/** Rows as aligned columns. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd()
  return [line(header), ...rows.map(line)].join('\n')
}

/**
 * A transfer's progress bar with throughput, on stderr, only when stderr is a terminal and
 * neither --json nor --no-progress was given.
 */
export class Progress {
  private readonly bar: SingleBar | undefined
  private readonly started = Date.now()
  private samples: Array<{ t: number; bytes: number }> = []

  constructor(cmd: Command, label: string, total: number) {
    const g = globals(cmd)
    if (!process.stderr.isTTY || g.json || !g.progress) return
    this.bar = new SingleBar(
      {
        format: `${label} {bar} {percentage}% | {done} of {size} | {rate} | ETA {eta_formatted}`,
        clearOnComplete: true,
        fps: 8,
        etaBuffer: 50,
      },
      Presets.shades_classic,
    )
    this.bar.start(Math.max(total, 1), 0, { done: formatBytes(0), size: formatBytes(total), rate: '-' })
  }

  update(bytes: number): void {
    if (this.bar === undefined) return
    const now = Date.now()
    this.samples.push({ t: now, bytes })
    // Throughput over the last 3 s, so it follows changes but does not flicker.
    while (this.samples.length > 2 && now - (this.samples[0]?.t ?? now) > 3_000) this.samples.shift()
    const first = this.samples[0] ?? { t: this.started, bytes: 0 }
    const seconds = (now - first.t) / 1000
    const rate = seconds > 0 ? `${formatBytes((bytes - first.bytes) / seconds)}/s` : '-'
    this.bar.update(bytes, { done: formatBytes(bytes), rate })
  }

  stop(): void {
    this.bar?.stop()
  }

  /** Average throughput since the start, for the summary line. */
  rate(bytes: number): string {
    const seconds = (Date.now() - this.started) / 1000
    return seconds > 0 ? `${formatBytes(bytes / seconds)}/s` : '-'
  }
}
