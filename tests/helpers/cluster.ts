import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { LocalCluster, type LocalClusterOptions } from '@mycel/cli'
import { NodeLink } from './fault-proxy.js'

export const TEST_TMP = join(process.cwd(), '.test-tmp')

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

/** A base port b such that b .. b+count-1 are all free on loopback right now. */
export async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    // Below Linux's ephemeral range (32768-60999): a port reserved for a node started later must
    // not be taken meanwhile by some outgoing connection's local port.
    const base = 20_000 + Math.floor(Math.random() * 12_000)
    let ok = true
    for (let p = base; p < base + count && ok; p++) ok = await portFree(p)
    if (ok) return base
  }
  throw new Error('no free port range found')
}

export interface TestCluster extends LocalCluster {
  dataDir: string
  /** Node i's cuttable network link, when started with `links: true`. */
  links: NodeLink[]
  /** Stops every process and removes the data directory. */
  destroy(): Promise<void>
}

export interface TestClusterOptions extends Partial<LocalClusterOptions> {
  nodes: number
  dataDir?: string
  /**
   * Put every node behind a NodeLink (fault-proxy.ts): the node advertises the link's ingress
   * address and dials out through its egress, so `cluster.links[i].cut()` partitions node i.
   */
  links?: boolean
}

/**
 * Starts real node and gateway processes on free loopback ports with a fresh data directory.
 * `nodeEnv` gives node i its own variables (zone labels, timings); `env` applies to every process.
 */
export async function startCluster(opts: TestClusterOptions): Promise<TestCluster> {
  const { mkdir } = await import('node:fs/promises')
  await mkdir(TEST_TMP, { recursive: true })
  const dataDir = opts.dataDir ?? (await mkdtemp(join(TEST_TMP, 'cluster-')))
  const grpc = await freePortRange(opts.nodes)
  const admin = await freePortRange(opts.nodes)
  const gateway = await freePortRange(1)
  const links = opts.links
    ? await Promise.all(Array.from({ length: opts.nodes }, (_, i) => NodeLink.start(`127.0.0.1:${grpc + i}`)))
    : []
  const cluster = new LocalCluster({
    ports: { grpc, admin, gateway, rpc: 'off' },
    readyTimeoutMs: 60_000,
    ...opts,
    env: { MYCEL_LOG_LEVEL: 'warn', ...opts.env },
    // Suites (and benchmarks) send requests as fast as they can from one address; the rate limit
    // has its own suite (limits.test.ts).
    gatewayEnv: { MYCEL_RATE_LIMIT_RPS: '0', ...opts.gatewayEnv },
    nodeEnv: (i) => ({
      ...(links[i]
        ? { MYCEL_ADVERTISE_ADDRESS: links[i].ingressAddress, grpc_proxy: links[i].egressUrl }
        : {}),
      ...opts.nodeEnv?.(i),
    }),
    dataDir,
  }) as TestCluster
  cluster.dataDir = dataDir
  cluster.links = links
  cluster.destroy = async () => {
    await cluster.stop()
    await Promise.all(links.map((l) => l.close()))
    await rm(dataDir, { recursive: true, force: true })
  }
  try {
    await cluster.start()
  } catch (err) {
    await Promise.all(links.map((l) => l.close()))
    throw err
  }
  return cluster
}
