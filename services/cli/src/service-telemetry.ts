import { loadGatewayEnv, loadNodeEnv } from '@mycel/core'
// The SDK's entry only (no prom-client, which loads node:http before the hooks exist).
import { gatewayResourceAttributes, nodeResourceAttributes, startTelemetry } from '@mycel/telemetry/start'

/**
 * `mycel node|gateway` start telemetry before anything else is imported: the application's modules
 * (Nest, Express, grpc-js, node:http, and the CLI's own SDK commands) must load after the SDK's
 * loader hooks are in place to be instrumented. Other commands (and `--help`) start nothing.
 */
export async function startServiceTelemetry(argv: readonly string[]): Promise<void> {
  const [command, ...rest] = argv
  if (rest.some((a) => a === '-h' || a === '--help')) return
  if (command === 'node') {
    const cfg = loadNodeEnv()
    await startTelemetry({
      serviceName: 'mycel-node',
      attributes: nodeResourceAttributes(cfg.MYCEL_ADVERTISE_ADDRESS ?? cfg.MYCEL_GRPC_LISTEN),
    })
  } else if (command === 'gateway') {
    const cfg = loadGatewayEnv()
    await startTelemetry({
      serviceName: 'mycel-gateway',
      attributes: gatewayResourceAttributes(cfg.MYCEL_GATEWAY_LISTEN),
    })
  }
}
