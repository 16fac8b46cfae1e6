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
  /**
   * Extra environment for node i only (zone labels, an advertised proxy address...), applied
   * after `env`. A node's MYCEL_ADVERTISE_ADDRESS is also what the others and the gateway get as
   * its seed address.
   */
  nodeEnv?: (i: number) => Record<string, string>
  /** Extra environment for the gateway only. */
  gatewayEnv?: Record<string, string>
  /** How long a process may take to report ready, and the cluster to converge. */
  readyTimeoutMs?: number
  /**
   * Mutual TLS between the processes: a directory made by deploy/tls/make-certs.sh (ca.crt,
   * node-<i>.crt/.key, gateway.crt/.key).
   */
  tlsDir?: string
  /** A token with the admin scope, for the gateway's status when the gateway requires tokens. */
  statusToken?: string
  /**
   * Nodes (by index) that start() does not start, to add later: `nodes[i].start()` joins through
   * the others as seeds. They are left out of every MYCEL_PEERS, so nobody waits for them.
   */
  deferred?: readonly number[]
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

/**
 * Membership timings for local clusters: a killed node is suspect within about two seconds and
 * declared dead 15 s later, so failure handling can be watched in a minute. Production defaults
 * are in the README (dead after 5 minutes).
 */
export const LOCAL_MEMBERSHIP_ENV: Record<string, string> = {
  MYCEL_DEAD_AFTER_MS: '15000',
  MYCEL_SYNC_INTERVAL_MS: '2000',
}

/** A member as the gateway's status shows it. */
export interface MemberStatus {
  id: string
  address: string
  zone: string
  state: string
  incarnation: number
  reachable: boolean
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
    const nodeEnvs = Array.from(
      { length: options.nodes },
      (_, i): Record<string, string> => ({
        MYCEL_DATA_DIR: join(dataDir, `node-${i}`),
        MYCEL_GRPC_LISTEN: `${this.host}:${this.ports.grpc + i}`,
        MYCEL_ADMIN_LISTEN: `${this.host}:${this.ports.admin + i}`,
        // Every node coordinates public API requests, so it needs the cluster's R.
        MYCEL_REPLICATION: String(Math.min(3, options.nodes)),
        ...LOCAL_MEMBERSHIP_ENV,
        ...tlsEnvFor(options.tlsDir, `node-${i}`),
        ...options.env,
        ...options.nodeEnv?.(i),
      }),
    )
    // Every node is a seed of every other (and of the gateway): any one of them up is enough to join.
    const peers = nodeEnvs
      .map((e) => e.MYCEL_ADVERTISE_ADDRESS ?? (e.MYCEL_GRPC_LISTEN as string))
      .filter((_, i) => !options.deferred?.includes(i))
    for (let i = 0; i < options.nodes; i++) {
      this.nodes.push(
        new ServiceProcess(
          `node-${i}`,
          'node',
          { MYCEL_PEERS: peers.join(','), ...nodeEnvs[i] },
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

  /** The nodes start() starts (all but the deferred ones). */
  get initialNodes(): ServiceProcess[] {
    return this.nodes.filter((_, i) => !this.options.deferred?.includes(i))
  }

  /** Node i's id (known once it reported ready). */
  nodeId(i: number): string {
    return String(this.nodes[i]?.readyInfo?.nodeId ?? '')
  }

  /** Starts every node, then the gateway, and waits until the gateway sees every node alive. */
  async start(): Promise<void> {
    await mkdir(join(resolve(this.options.dataDir), 'logs'), { recursive: true })
    try {
      await Promise.all(this.initialNodes.map((n) => n.start()))
      await this.gateway.start()
      const n = this.initialNodes.length
      await this.waitForMembers(
        (ms) => ms.filter((m) => m.state === 'alive' && m.reachable).length >= n,
        this.options.readyTimeoutMs ?? 60_000,
        `all ${n} nodes alive`,
      )
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  /** The members in the gateway's status. */
  async members(): Promise<MemberStatus[]> {
    const token = this.options.statusToken
    const res = await fetch(`${this.gatewayUrl}/mycel/v1/status`, {
      signal: AbortSignal.timeout(10_000),
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    })
    if (!res.ok) throw new Error(`status answered ${res.status}`)
    return ((await res.json()) as { nodes: MemberStatus[] }).nodes
  }

  /** Polls the gateway's status until `done(members)` holds; throws after `timeoutMs`. */
  async waitForMembers(
    done: (members: MemberStatus[]) => boolean,
    timeoutMs: number,
    what = 'membership condition',
  ): Promise<MemberStatus[]> {
    const until = Date.now() + timeoutMs
    let last: MemberStatus[] = []
    let error = ''
    while (Date.now() < until) {
      try {
        last = await this.members()
        if (done(last)) return last
      } catch (err) {
        error = err instanceof Error ? err.message : String(err)
      }
      await new Promise((r) => setTimeout(r, 200))
    }
    const seen = last.map((m) => `${m.address} ${m.state}${m.reachable ? '' : ' (unreachable)'}`).join(', ')
    throw new Error(`gateway: not ${what} within ${timeoutMs} ms; members: ${seen || 'none'} ${error}`)
  }

  async stop(): Promise<void> {
    await this.gateway.stop()
    await Promise.all(this.nodes.map((n) => n.stop()))
  }
}

/**
 * Background timings for a local cluster, so repair and scrubbing can be watched within a minute
 * (production defaults wait minutes to days). Variables set in the environment win.
 */
export const LOCAL_TIMINGS: Record<string, string> = {
  MYCEL_REPAIR_INTERVAL_MS: '5000',
  MYCEL_REPAIR_RATE_BYTES: String(256 * 1024 * 1024),
  MYCEL_SCRUB_RATE_BYTES: String(64 * 1024 * 1024),
  MYCEL_SCRUB_INTERVAL_MS: '60000',
}

/** `mycel local`: start the cluster, print where it answers, stop cleanly on Ctrl-C. */
export async function runLocalCluster(opts: {
  nodes: number
  dataDir: string
  tlsDir?: string | undefined
}): Promise<number> {
  const timings = Object.fromEntries(Object.entries(LOCAL_TIMINGS).filter(([k]) => !process.env[k]))
  const cluster = new LocalCluster({
    nodes: opts.nodes,
    dataDir: opts.dataDir,
    env: timings,
    tlsDir: opts.tlsDir,
  })
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
    `  membership   a stopped node is suspect within ~2 s, dead after ${Number(LOCAL_MEMBERSHIP_ENV.MYCEL_DEAD_AFTER_MS) / 1000} s more (local timings)`,
    opts.tlsDir === undefined
      ? ''
      : `  mutual TLS   between nodes and gateway, certificates in ${resolve(opts.tlsDir)}`,
    '',
    'Try:',
    `  curl -s -T FILE ${cluster.gatewayUrl}/mycel/v1/upload`,
    `  curl -s -F file=@FILE ${cluster.gatewayUrl}/api/v0/add`,
    `  curl -s -o OUT ${cluster.gatewayUrl}/ipfs/CID`,
    `  npx mycel --node ${cluster.nodeAddress(0)} put FILE|DIR      (gRPC: also get, cat, stat, pin, status)`,
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
