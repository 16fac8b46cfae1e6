import { clusterClientOptions } from '@mycel/cluster'
import { type GatewayEnv, isRoutable, UpstreamUnavailableError } from '@mycel/core'
import { MycelClient, type MycelClientOptions } from '@mycel/sdk'
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

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayEnv,
    @Inject(GatewayRuntime) private readonly runtime: GatewayRuntime,
  ) {}

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
      // The cluster's TLS, as for block traffic (the public API asks for no client certificate,
      // but the credentials follow a rotated CA).
      channel: this.channel(),
      timeoutMs: this.config.MYCEL_RPC_TIMEOUT_MS * 6,
    })
    this.current = { key, client }
    return client
  }

  private channel(): MycelClientOptions['channel'] {
    const { credentials, channelOptions } = clusterClientOptions(
      this.runtime.tls,
      this.config.MYCEL_TLS_SERVER_NAME,
    )
    return credentials === undefined ? undefined : { credentials, options: channelOptions }
  }

  onApplicationShutdown(): void {
    this.current?.client.close()
  }
}
