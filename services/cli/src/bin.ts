#!/usr/bin/env node
/**
 * `mycel`: one entry point for every role. `mycel node` and `mycel gateway` start the services
 * (the container image runs these), `mycel local` starts a whole cluster of local processes.
 */
import { parseArgs } from 'node:util'
import { ConfigInvalidError } from '@mycel/core'

const USAGE = `usage: mycel <command> [options]

commands:
  node       start a storage node (configured by MYCEL_* environment variables)
  gateway    start the HTTP gateway (configured by MYCEL_* environment variables)
  local      start a local cluster of storage nodes and a gateway as processes
             --nodes N (default 3)  --data-dir DIR (default ./.data)
             --tls-dir DIR (mutual TLS with deploy/tls/make-certs.sh certificates)

Run 'mycel <command> --help' for a command's options.`

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'node': {
      const { runNode } = await import('@mycel/node')
      await runNode()
      return -1
    }
    case 'gateway': {
      const { runGateway } = await import('@mycel/gateway')
      await runGateway()
      return -1
    }
    case 'local': {
      const { values } = parseArgs({
        args: rest,
        options: {
          nodes: { type: 'string', default: '3' },
          'data-dir': { type: 'string', default: './.data' },
          'tls-dir': { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
      })
      if (values.help) {
        console.log('usage: mycel local [--nodes N] [--data-dir DIR] [--tls-dir DIR]')
        return 0
      }
      const nodes = Number(values.nodes)
      if (!Number.isInteger(nodes) || nodes < 1 || nodes > 32) {
        console.error(`mycel local: --nodes must be an integer from 1 to 32 (got "${values.nodes}")`)
        return 2
      }
      const { runLocalCluster } = await import('./local-cluster.js')
      return runLocalCluster({ nodes, dataDir: values['data-dir'] ?? './.data', tlsDir: values['tls-dir'] })
    }
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      console.log(USAGE)
      return command === undefined ? 2 : 0
    default:
      console.error(`mycel: unknown command "${command}"\n\n${USAGE}`)
      return 2
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code
  },
  (err: unknown) => {
    if (err instanceof ConfigInvalidError) {
      console.error(`mycel: ${err.message}`)
      process.exitCode = 78 // EX_CONFIG
    } else {
      console.error('mycel: fatal:', err)
      process.exitCode = 1
    }
  },
)
