import 'reflect-metadata'
import type { Server } from 'node:http'
import {
  createLogger,
  exitGracefullyOnSignals,
  type GatewayEnv,
  keepServingOnUnhandledRejections,
  loadGatewayEnv,
  nestLogger,
  splitHostPort,
} from '@mycel/core'
import { shutdownTelemetry } from '@mycel/telemetry'
import type { NestApplicationOptions } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { ExpressAdapter, type NestExpressApplication } from '@nestjs/platform-express'
import { GatewayModule } from './gateway.module.js'
import { GatewayRuntime } from './gateway-runtime.js'
import { answerClientErrors, createGatewayServer } from './http/guard.js'
import { methodNotAllowed } from './http/methods.js'
import { loadOpenApi } from './http/openapi.controller.js'
import { assertSpoolDirWritable } from './ipld/car.js'

/** Nest's Express adapter, serving on an HTTP server with the gateway's connection limits. */
class LimitedExpressAdapter extends ExpressAdapter {
  constructor(private readonly config: GatewayEnv) {
    super()
  }

  override initHttpServer(options: NestApplicationOptions): void {
    super.initHttpServer(options)
    this.setHttpServer(createGatewayServer(this.config, this.getInstance()))
  }
}

/**
 * Starts the stateless HTTP gateway from MYCEL_* environment variables: the gateway listener,
 * and the same app on the Kubo RPC port. Logs one `gateway ready` line once it serves.
 */
export async function runGateway(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadGatewayEnv(env)
  await assertSpoolDirWritable(config.MYCEL_TMP_DIR)
  const logger = createLogger('mycel-gateway', config.MYCEL_LOG_LEVEL)
  const app = await NestFactory.create<NestExpressApplication>(
    GatewayModule.forRoot(config, logger),
    new LimitedExpressAdapter(config),
    {
      // Bodies are streams: uploads are never parsed into memory.
      bodyParser: false,
      logger: nestLogger(logger.child({ component: 'gateway:nest' })),
      abortOnError: false,
    },
  )
  app.disable('x-powered-by')
  app.set('query parser', 'simple')
  if (config.MYCEL_TRUSTED_PROXIES !== undefined) app.set('trust proxy', config.MYCEL_TRUSTED_PROXIES)
  const runtime = app.get(GatewayRuntime)
  // Request rate and latency by route, for every route (registered before Nest's routes), refused
  // requests included; then methods the API does not have (405), then authentication and limits.
  app.use(runtime.metrics.httpMiddleware())
  app.use(methodNotAllowed(loadOpenApi().document))
  app.use(runtime.guard.middleware)
  // Spans still buffered are exported before the process exits.
  exitGracefullyOnSignals(() => app.close().then(shutdownTelemetry), logger, 30_000)
  keepServingOnUnhandledRejections(logger)
  const gw = splitHostPort(config.MYCEL_GATEWAY_LISTEN)
  let main: Server
  const addresses: Record<string, string> = {}
  let rpcServer: Server | undefined
  try {
    await app.listen(gw.port, gw.host)
    main = app.getHttpServer() as Server
    answerClientErrors(main, config, runtime.metrics)
    addresses.gateway = `${gw.host}:${portOf(main, gw.port)}`
    if (config.MYCEL_RPC_LISTEN !== 'off') {
      const rpc = splitHostPort(config.MYCEL_RPC_LISTEN)
      const server = createGatewayServer(config, app.getHttpAdapter().getInstance())
      rpcServer = server
      answerClientErrors(server, config, runtime.metrics)
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

function portOf(server: Server, fallback: number): number {
  const a = server.address()
  return typeof a === 'object' && a !== null ? a.port : fallback
}
