import 'reflect-metadata'
import { createServer, type Server } from 'node:http'
import { createLogger, exitGracefullyOnSignals, loadGatewayEnv, nestLogger, splitHostPort } from '@mycel/core'
import { shutdownTelemetry } from '@mycel/telemetry'
import { NestFactory } from '@nestjs/core'
import type { NestExpressApplication } from '@nestjs/platform-express'
import { GatewayModule } from './gateway.module.js'
import { GatewayRuntime } from './gateway-runtime.js'
import { assertSpoolDirWritable } from './ipld/car.js'

/** Header and idle timeouts: slow or idle clients cannot hold sockets forever. */
const HEADERS_TIMEOUT_MS = 30_000
const KEEP_ALIVE_TIMEOUT_MS = 65_000

/**
 * Starts the stateless HTTP gateway from MYCEL_* environment variables: the gateway listener,
 * and the same app on the Kubo RPC port. Logs one `gateway ready` line once it serves.
 */
export async function runGateway(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadGatewayEnv(env)
  await assertSpoolDirWritable(config.MYCEL_TMP_DIR)
  const logger = createLogger('mycel-gateway', config.MYCEL_LOG_LEVEL)
  const app = await NestFactory.create<NestExpressApplication>(GatewayModule.forRoot(config, logger), {
    // Bodies are streams: uploads are never parsed into memory.
    bodyParser: false,
    logger: nestLogger(logger.child({ component: 'gateway:nest' })),
    abortOnError: false,
  })
  app.disable('x-powered-by')
  app.set('query parser', 'simple')
  // Request rate and latency by route, for every route (registered before Nest's routes).
  app.use(app.get(GatewayRuntime).metrics.httpMiddleware())
  // Spans still buffered are exported before the process exits.
  exitGracefullyOnSignals(() => app.close().then(shutdownTelemetry), logger, 30_000)
  const gw = splitHostPort(config.MYCEL_GATEWAY_LISTEN)
  let main: Server
  const addresses: Record<string, string> = {}
  let rpcServer: Server | undefined
  try {
    await app.listen(gw.port, gw.host)
    main = app.getHttpServer() as Server
    tuneServer(main)
    addresses.gateway = `${gw.host}:${portOf(main, gw.port)}`
    if (config.MYCEL_RPC_LISTEN !== 'off') {
      const rpc = splitHostPort(config.MYCEL_RPC_LISTEN)
      const server = createServer(app.getHttpAdapter().getInstance())
      rpcServer = server
      tuneServer(server)
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(rpc.port, rpc.host, resolve)
      })
      addresses.rpc = `${rpc.host}:${portOf(server, rpc.port)}`
    }
  } catch (err) {
    // A listener that cannot bind: close what Nest opened (membership watch, node clients).
    await app.close().catch(() => undefined)
    throw err
  }
  // Nest closes its own server on shutdown; the second listener closes with it.
  main.once('close', () => rpcServer?.close())
  const runtime = app.get(GatewayRuntime)
  runtime.registerServer(main)
  if (rpcServer) runtime.registerServer(rpcServer)
  // The ready line is printed whatever the log level: supervisors and tests wait for it.
  logger.child({}, { level: 'info' }).info(
    {
      event: 'ready',
      ...addresses,
      seeds: config.MYCEL_PEERS,
      seedDns: config.MYCEL_SEED_DNS,
      members: runtime.membership.members().length,
      routable: runtime.routableCount(),
      replication: config.MYCEL_REPLICATION,
      writeQuorum: config.MYCEL_WRITE_QUORUM,
    },
    'gateway ready',
  )
}

function tuneServer(server: Server): void {
  server.headersTimeout = HEADERS_TIMEOUT_MS
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS
  // requestTimeout stays 0: an upload of many GiB may take long; progress is what matters.
  server.requestTimeout = 0
}

function portOf(server: Server, fallback: number): number {
  const a = server.address()
  return typeof a === 'object' && a !== null ? a.port : fallback
}
