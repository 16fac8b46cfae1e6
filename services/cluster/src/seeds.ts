import { lookup } from 'node:dns/promises'
import { isIPv6 } from 'node:net'
import type { Logger } from '@mycel/core'

export interface SeedConfig {
  /** Static seed addresses (host:port), MYCEL_PEERS. */
  peers: readonly string[]
  /** A DNS name, or name:port, whose A/AAAA records are seeds (MYCEL_SEED_DNS). */
  dns?: string
  /** Port of the DNS seeds when `dns` names none. */
  defaultPort: number
  logger?: Logger
  /** Resolution is reused for this long (a join retries every second). */
  cacheMs?: number
  /** Address lookup; getaddrinfo by default, which also reads /etc/hosts (`localhost`). */
  resolve?: (name: string) => Promise<string[]>
}

async function lookupAll(name: string): Promise<string[]> {
  return (await lookup(name, { all: true })).map((a) => a.address)
}

/** "name" or "name:port" → parts (an IPv6 literal must be bracketed to carry a port). */
export function splitSeedName(dns: string, defaultPort: number): { name: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(dns)
  if (bracketed) return { name: bracketed[1] as string, port: Number(bracketed[2] ?? defaultPort) }
  const i = dns.lastIndexOf(':')
  if (i > 0 && dns.indexOf(':') === i) return { name: dns.slice(0, i), port: Number(dns.slice(i + 1)) }
  return { name: dns, port: defaultPort }
}

const hostPort = (host: string, port: number) => (isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`)

/**
 * Addresses a client can dial to reach some seed node: the static list, plus the DNS name itself
 * (gRPC resolves it to all its records and connects to one that answers). For clients that only
 * need any node, such as the gateway's client of the nodes' public API.
 */
export function seedDialAddresses(cfg: Pick<SeedConfig, 'peers' | 'dns' | 'defaultPort'>): string[] {
  if (cfg.dns === undefined) return [...cfg.peers]
  const { name, port } = splitSeedName(cfg.dns, cfg.defaultPort)
  return [...new Set([...cfg.peers, hostPort(name, port)])]
}

/**
 * Seed addresses for joining and reconnecting: the static list plus every address the DNS name
 * resolves to now. The name is resolved again after `cacheMs`, so that new pods behind a
 * Kubernetes headless Service are found; a failed resolution logs and keeps the name itself as a
 * seed (the Service may have no records yet).
 */
export function seedResolver(cfg: SeedConfig): () => Promise<string[]> {
  const resolve = cfg.resolve ?? lookupAll
  const cacheMs = cfg.cacheMs ?? 5_000
  let cached: { at: number; addresses: string[] } | undefined
  let warned = false
  return async () => {
    if (cfg.dns === undefined) return [...cfg.peers]
    if (cached === undefined || Date.now() - cached.at >= cacheMs) {
      const { name, port } = splitSeedName(cfg.dns, cfg.defaultPort)
      const asSeed = (host: string) => hostPort(host, port)
      let ips: string[] = []
      try {
        ips = await resolve(name)
        warned = false
      } catch (err) {
        if (!warned) cfg.logger?.warn({ dns: cfg.dns, err: String(err) }, 'seed DNS name did not resolve')
        warned = true
      }
      // Unresolved, the name itself stays a seed (a dial resolves it again): a node then keeps
      // joining instead of starting alone just because the Service has no records yet.
      cached = { at: Date.now(), addresses: ips.length > 0 ? ips.map(asSeed) : [asSeed(name)] }
    }
    return [...new Set([...cfg.peers, ...cached.addresses])]
  }
}
