import { readFileSync } from 'node:fs'
import { seedDialAddresses } from '@mycel/cluster'
import type { GatewayEnv } from '@mycel/core'
import { MycelClient } from '@mycel/sdk'
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common'
import { DEFAULT_NODE_GRPC_PORT, GATEWAY_CONFIG } from '../gateway-runtime.js'

/**
 * The nodes' public gRPC API as the gateway uses it (pins live on the nodes): an SDK client over
 * the seed nodes (MYCEL_PEERS and the MYCEL_SEED_DNS name), with failover, presenting
 * MYCEL_API_TOKEN when the nodes require tokens.
 */
@Injectable()
export class NodeApi implements OnApplicationShutdown {
  readonly client: MycelClient

  constructor(@Inject(GATEWAY_CONFIG) config: GatewayEnv) {
    this.client = new MycelClient({
      nodes: seedDialAddresses({
        peers: config.MYCEL_PEERS,
        dns: config.MYCEL_SEED_DNS,
        defaultPort: DEFAULT_NODE_GRPC_PORT,
      }),
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
