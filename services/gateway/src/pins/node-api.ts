import { readFileSync } from 'node:fs'
import { type GatewayEnv, isRoutable, UpstreamUnavailableError } from '@mycel/core'
import { MycelClient } from '@mycel/sdk'
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common'
import { GATEWAY_CONFIG, GatewayRuntime } from '../gateway-runtime.js'

/** A replaced client still serves the calls it started; it is closed after this long. */
const RETIRED_CLIENT_CLOSE_MS = 10 * 60_000

/**
 * The nodes' public gRPC API as the gateway uses it (pins live on the nodes): an SDK client over
 * the routable members the gateway's membership knows (the seeds until it knows any), with
 * failover, presenting MYCEL_API_TOKEN when the nodes require tokens. The client is rebuilt when
 * the set of routable addresses changes, so a gateway seeded only by DNS works too.
 */
@Injectable()
export class NodeApi implements OnApplicationShutdown {
  private current: { key: string; client: MycelClient } | undefined
  private readonly tlsCa: Buffer | undefined

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayEnv,
    @Inject(GatewayRuntime) private readonly runtime: GatewayRuntime,
  ) {
    this.tlsCa = config.MYCEL_TLS_CA_FILE === undefined ? undefined : readFileSync(config.MYCEL_TLS_CA_FILE)
  }

  get client(): MycelClient {
    const routable = this.runtime.membership
      .members()
      .filter(isRoutable)
      .map((m) => m.address)
    const addresses = routable.length > 0 ? routable.sort() : [...this.config.MYCEL_PEERS]
    const key = addresses.join(',')
    if (this.current?.key === key) return this.current.client
    if (addresses.length === 0) {
      throw new UpstreamUnavailableError(
        'no storage node is known yet (membership not received from the seeds)',
      )
    }
    const retired = this.current?.client
    if (retired) setTimeout(() => retired.close(), RETIRED_CLIENT_CLOSE_MS).unref()
    const client = new MycelClient({
      nodes: addresses,
      token: this.config.MYCEL_API_TOKEN,
      // The public API needs no client certificate: server-side TLS and the token.
      tls:
        this.tlsCa === undefined
          ? undefined
          : { ca: this.tlsCa, serverName: this.config.MYCEL_TLS_SERVER_NAME },
      timeoutMs: this.config.MYCEL_RPC_TIMEOUT_MS * 6,
    })
    this.current = { key, client }
    return client
  }

  onApplicationShutdown(): void {
    this.current?.client.close()
  }
}
