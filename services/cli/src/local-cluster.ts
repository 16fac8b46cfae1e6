import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream, type WriteStream } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const BIN = fileURLToPath(new URL('./bin.js', import.meta.url))

export interface LocalClusterPorts {
  /** Node i listens for gRPC on grpc + i and for admin HTTP on admin + i. */
  grpc: number
  admin: number
  gateway: number
  /** Kubo RPC port, or 'off'. */
  rpc: number | 'off'
}

export const DEFAULT_PORTS: LocalClusterPorts = { grpc: 7070, admin: 9100, gateway: 8080, rpc: 5001 }

export interface LocalClusterOptions {
  nodes: number
  dataDir: string
  ports?: LocalClusterPorts
  host?: string
  /** Extra environment for every process (MYCEL_* overrides). */
  env?: Record<string, string>
  /** Extra environment for the gateway only. */
  gatewayEnv?: Record<string, string>
  /** How long a process may take to report ready. */
  readyTimeoutMs?: number
  /**
   * Mutual TLS between the processes: a directory made by deploy/tls/make-certs.sh (ca.crt,
   * node-<i>.crt/.key, gateway.crt/.key).
   */
  tlsDir?: string
}

/** MYCEL_TLS_* for the process whose certificate is `name`.crt in `dir`. */
export function tlsEnvFor(dir: string | undefined, name: string): Record<string, string> {
  if (dir === undefined) return {}
  const d = resolve(dir)
  return {
    MYCEL_TLS_CERT_FILE: join(d, `${name}.crt`),
    MYCEL_TLS_KEY_FILE: join(d, `${name}.key`),
    MYCEL_TLS_CA_FILE: join(d, 'ca.crt'),
  }
}

/** Children still running; if the supervisor itself dies, they go with it. */
const liveChildren = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL')
})

/** One supervised service process; its JSON log lines go to a file. */
export class ServiceProcess {
  child: ChildProcess | undefined
  readyInfo: Record<string, unknown> | undefined
  private log: WriteStream | undefined
  private exited: Promise<number | null> = Promise.resolve(null)

  constructor(
    readonly name: string,
    private readonly role: 'node' | 'gateway',
    private readonly env: Record<string, string>,
    private readonly logPath: string,
    private readonly readyTimeoutMs: number,
  ) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
  }

  get pid(): number | undefined {
    return this.child?.pid
  }

  async start(): Promise<Record<string, unknown>> {
    this.log = createWriteStream(this.logPath, { flags: 'a' })
    const child = spawn(process.execPath, [BIN, this.role], {
      // glibc gives every thread (RocksDB's, libuv's) its own malloc arena; two arenas cut the
      // nodes' resident memory by about a fifth under upload load here, at no measurable cost.
      env: { MALLOC_ARENA_MAX: '2', ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      // A process group of its own: Ctrl-C in the terminal reaches only the supervisor, which
      // then stops the gateway first and the nodes after it, each once.
      detached: true,
    })
    liveChildren.add(child)
    child.once('exit', () => liveChildren.delete(child))
    this.child = child
    this.readyInfo = undefined
    const log = this.log
    child.stderr?.pipe(log, { end: false })
    this.exited = new Promise((res) => child.once('exit', (code) => res(code)))
    const stderrTail: string[] = []
    child.stderr?.on('data', (d: Buffer) => {
      stderrTail.push(d.toString())
      if (stderrTail.length > 20) stderrTail.shift()
    })
    return new Promise((resolveReady, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `${this.name} did not become ready within ${this.readyTimeoutMs} ms (log: ${this.logPath})`,
          ),
        )
      }, this.readyTimeoutMs)
      const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
      lines.on('line', (line) => {
        log.write(`${line}\n`)
        if (this.readyInfo !== undefined || !line.includes('"event":"ready"')) return
        try {
          this.readyInfo = JSON.parse(line) as Record<string, unknown>
          clearTimeout(timer)
          resolveReady(this.readyInfo)
        } catch {
          // not a JSON line; keep waiting
        }
      })
      child.once('exit', (code, signal) => {
        clearTimeout(timer)
        if (this.readyInfo === undefined) {
          reject(
            new Error(
              `${this.name} exited (${signal ?? code}) before it was ready: ${stderrTail.join('').trim().slice(-2000)} (log: ${this.logPath})`,
            ),
          )
        }
      })
    })
  }

  /** Sends `signal` and waits for the exit; SIGKILL after `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 30_000): Promise<number | null> {
    const child = this.child
    if (child === undefined || !this.running) return child?.exitCode ?? null
    child.kill(signal)
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    const code = await this.exited
    clearTimeout(timer)
    await new Promise<void>((r) => (this.log ? this.log.end(r) : r()))
    return code
  }

  /** Stops the process without waiting for a graceful exit (a crash). */
  async kill(): Promise<void> {
    await this.stop('SIGKILL', 0)
  }

  /** Freezes (SIGSTOP) or thaws (SIGCONT) the process: a hung node. */
  pause(paused: boolean): void {
    this.child?.kill(paused ? 'SIGSTOP' : 'SIGCONT')
  }
}

/** A cluster of storage nodes and a gateway as local processes, for `make run` and the tests. */
export class LocalCluster {
  readonly nodes: ServiceProcess[] = []
  readonly gateway: ServiceProcess
  readonly ports: LocalClusterPorts
  readonly host: string

  constructor(readonly options: LocalClusterOptions) {
    this.ports = options.ports ?? DEFAULT_PORTS
    this.host = options.host ?? '127.0.0.1'
    const dataDir = resolve(options.dataDir)
    const timeout = options.readyTimeoutMs ?? 60_000
    const peers = Array.from({ length: options.nodes }, (_, i) => `${this.host}:${this.ports.grpc + i}`)
    for (let i = 0; i < options.nodes; i++) {
      this.nodes.push(
        new ServiceProcess(
          `node-${i}`,
          'node',
          {
            MYCEL_DATA_DIR: join(dataDir, `node-${i}`),
            MYCEL_GRPC_LISTEN: `${this.host}:${this.ports.grpc + i}`,
            MYCEL_ADMIN_LISTEN: `${this.host}:${this.ports.admin + i}`,
            ...tlsEnvFor(options.tlsDir, `node-${i}`),
            ...options.env,
          },
          join(dataDir, 'logs', `node-${i}.log`),
          timeout,
        ),
      )
    }
    this.gateway = new ServiceProcess(
      'gateway',
      'gateway',
      {
        MYCEL_PEERS: peers.join(','),
        MYCEL_GATEWAY_LISTEN: `${this.host}:${this.ports.gateway}`,
        MYCEL_RPC_LISTEN: this.ports.rpc === 'off' ? 'off' : `${this.host}:${this.ports.rpc}`,
        MYCEL_REPLICATION: String(Math.min(3, options.nodes)),
        // A local cluster is for development: no tokens unless the caller asks for them.
        MYCEL_AUTH: 'off',
        ...tlsEnvFor(options.tlsDir, 'gateway'),
        ...options.env,
        ...options.gatewayEnv,
      },
      join(dataDir, 'logs', 'gateway.log'),
      timeout,
    )
  }

  get gatewayUrl(): string {
    return `http://${this.host}:${this.ports.gateway}`
  }

  nodeAddress(i: number): string {
    return `${this.host}:${this.ports.grpc + i}`
  }

  adminUrl(i: number): string {
    return `http://${this.host}:${this.ports.admin + i}`
  }

  async start(): Promise<void> {
    await mkdir(join(resolve(this.options.dataDir), 'logs'), { recursive: true })
    try {
      await Promise.all(this.nodes.map((n) => n.start()))
      await this.gateway.start()
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  async stop(): Promise<void> {
    await this.gateway.stop()
    await Promise.all(this.nodes.map((n) => n.stop()))
  }
}

/** `mycel local`: start the cluster, print where it answers, stop cleanly on Ctrl-C. */
export async function runLocalCluster(opts: {
  nodes: number
  dataDir: string
  tlsDir?: string | undefined
}): Promise<number> {
  const cluster = new LocalCluster({ nodes: opts.nodes, dataDir: opts.dataDir, tlsDir: opts.tlsDir })
  process.stdout.write(
    `starting ${opts.nodes} storage nodes and a gateway (data in ${resolve(opts.dataDir)})\n`,
  )
  let stopping = false
  const stop = async (signal: string) => {
    if (stopping) return
    stopping = true
    process.stdout.write(`\n${signal}: stopping the cluster...\n`)
    await cluster.stop()
    process.stdout.write(`stopped; data kept in ${resolve(opts.dataDir)}\n`)
    process.exit(0)
  }
  process.on('SIGINT', () => void stop('SIGINT'))
  process.on('SIGTERM', () => void stop('SIGTERM'))
  try {
    await cluster.start()
  } catch (err) {
    process.stderr.write(`mycel local: ${err instanceof Error ? err.message : String(err)}\n`)
    return 1
  }
  const lines = [
    '',
    'Mycel is ready.',
    `  gateway      ${cluster.gatewayUrl}   (/ipfs/{cid}, /api/v0, /mycel/v1/status, /metrics)`,
    cluster.ports.rpc === 'off' ? '' : `  kubo rpc     http://${cluster.host}:${cluster.ports.rpc}/api/v0`,
    ...cluster.nodes.map(
      (n, i) =>
        `  ${n.name.padEnd(12)} grpc ${cluster.nodeAddress(i)}   admin ${cluster.adminUrl(i)}   id ${String(n.readyInfo?.nodeId ?? '?')}`,
    ),
    `  logs         ${join(resolve(opts.dataDir), 'logs')}`,
    opts.tlsDir === undefined
      ? ''
      : `  mutual TLS   between nodes and gateway, certificates in ${resolve(opts.tlsDir)}`,
    '',
    'Try:',
    `  curl -s -T FILE ${cluster.gatewayUrl}/mycel/v1/upload`,
    `  curl -s -F file=@FILE ${cluster.gatewayUrl}/api/v0/add`,
    `  curl -s -o OUT ${cluster.gatewayUrl}/ipfs/CID`,
    '',
    'Press Ctrl-C to stop.',
  ]
  process.stdout.write(`${lines.filter((l) => l !== '').join('\n')}\n`)
  // Stay up until a signal; report a process that dies on its own.
  for (const p of [...cluster.nodes, cluster.gateway]) {
    p.child?.once('exit', (code, signal) => {
      if (!stopping) process.stderr.write(`${p.name} exited unexpectedly (${signal ?? code}); see its log\n`)
    })
  }
  return -1
}
