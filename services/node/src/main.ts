import 'reflect-metadata'
import {
  createLogger,
  exitGracefullyOnSignals,
  keepServingOnUnhandledRejections,
  type Logger,
  loadNodeEnv,
  nestLogger,
  splitHostPort,
} from '@mycel/core'
import { shutdownTelemetry } from '@mycel/telemetry'
import { NestFactory } from '@nestjs/core'
import { NodeModule } from './node.module.js'
import { NodeRuntime } from './node-runtime.js'

/**
 * Starts a storage node from MYCEL_* environment variables and logs one `node ready` line with
 * its addresses once it serves.
 */
export async function runNode(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadNodeEnv(env)
  const logger: Logger = createLogger('mycel-node', config.MYCEL_LOG_LEVEL)
  const app = await NestFactory.create(NodeModule.forRoot(config, logger), {
    logger: nestLogger(logger.child({ component: 'node:nest' })),
    abortOnError: false,
  })
  // Nest's lifecycle hooks drain gRPC and close RocksDB; a clean drain exits 0. Spans still
  // buffered are exported last.
  exitGracefullyOnSignals(
    () => app.close().then(shutdownTelemetry),
    logger,
    config.MYCEL_SHUTDOWN_TIMEOUT_MS + 10_000,
  )
  keepServingOnUnhandledRejections(logger)
  const { host, port } = splitHostPort(config.MYCEL_ADMIN_LISTEN)
  try {
    await app.listen(port, host)
  } catch (err) {
    // The admin port cannot bind: drain gRPC and close RocksDB before the error ends the process.
    await app.close().catch(() => undefined)
    throw err
  }
  const address = app.getHttpServer().address()
  const runtime = app.get(NodeRuntime)
  // The ready line is printed whatever the log level: supervisors and tests wait for it.
  logger.child({}, { level: 'info' }).info(
    {
      event: 'ready',
      nodeId: runtime.nodeId,
      grpc: runtime.grpcAddress,
      admin: `${host}:${typeof address === 'object' && address ? address.port : port}`,
      zone: config.MYCEL_ZONE,
      dataDir: config.MYCEL_DATA_DIR,
    },
    'node ready',
  )
}
