import { readFileSync } from 'node:fs'
import type { GatewayEnv } from '@mycel/core'
import { MycelClient } from '@mycel/sdk'
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common'
import { GATEWAY_CONFIG } from '../gateway-runtime.js'

/**
 * The nodes' public gRPC API as the gateway uses it (pins live on the nodes): an SDK client over
 * every configured node, with failover, presenting MYCEL_API_TOKEN when the nodes require tokens.
 */
@Injectable()
export class NodeApi implements OnApplicationShutdown {
  readonly client: MycelClient

  constructor(@Inject(GATEWAY_CONFIG) config: GatewayEnv) {
    this.client = new MycelClient({
      nodes: config.MYCEL_PEERS,
      token: config.MYCEL_API_TOKEN,
      tls:
        config.MYCEL_TLS_CA_FILE === undefined ? undefined : { ca: readFileSync(config.MYCEL_TLS_CA_FILE) },
      timeoutMs: config.MYCEL_RPC_TIMEOUT_MS * 6,
    })
  }

  onApplicationShutdown(): void {
    this.client.close()
  }
}
