import type { Command } from 'commander'
import { UsageError } from '../output.js'

/**
 * `mycel node|gateway|local`: the services themselves (the container image runs these). For
 * `node` and `gateway`, bin.ts has started telemetry (service-telemetry.ts) before any of this
 * loaded, so the dynamic imports below are instrumented.
 */
export function serviceCommands(program: Command): void {
  program
    .command('node')
    .description('start a storage node (configured by MYCEL_* environment variables)')
    .action(async () => {
      const { runNode } = await import('@mycel/node')
      await exitIfStartFails(runNode)
    })
  program
    .command('gateway')
    .description('start the HTTP gateway (configured by MYCEL_* environment variables)')
    .action(async () => {
      const { runGateway } = await import('@mycel/gateway')
      await exitIfStartFails(runGateway)
    })
  program
    .command('local')
    .description('start a local cluster of storage nodes and a gateway as processes (make run)')
    .option('--nodes <n>', 'storage nodes (1-32)', '3')
    .option('--data-dir <dir>', 'data and logs', './.data')
    .option('--tls-dir <dir>', 'mutual TLS with the certificates of deploy/tls/make-certs.sh (make certs)')
    .action(async (o) => {
      const nodes = Number(o.nodes)
      if (!Number.isInteger(nodes) || nodes < 1 || nodes > 32) {
        throw new UsageError(`--nodes must be an integer from 1 to 32 (got "${o.nodes}")`)
      }
      const { runLocalCluster } = await import('../local-cluster.js')
      const code = await runLocalCluster({ nodes, dataDir: o.dataDir, tlsDir: o.tlsDir })
      if (code >= 0) process.exitCode = code
    })
}

/**
 * A service that fails to start (a port in use, an unreadable certificate) must exit so its
 * supervisor sees it, even if something it opened (a gRPC channel, a timer) would keep Node
 * alive: bin.ts prints the error and sets the exit code, then this deadline ends the process.
 */
async function exitIfStartFails(start: () => Promise<void>): Promise<void> {
  try {
    await start()
  } catch (err) {
    setTimeout(() => process.exit(), 2_000).unref()
    throw err
  }
}
