#!/usr/bin/env node
/**
 * `mycel`: the client of a Mycel cluster (put, get, cat, stat, ls, pin, status over the nodes'
 * public gRPC API) and the entry point of every role: `mycel node` and `mycel gateway` start the
 * services (the container image runs these), `mycel local` a whole cluster of local processes.
 */
// Only modules that load neither grpc-js nor node:http are imported statically: the commands
// (SDK, proto) are imported in main() after `mycel node|gateway` started telemetry, whose loader
// hooks patch only the modules loaded after them.
import { ConfigInvalidError } from '@mycel/core'
import { Command, CommanderError } from 'commander'
import { startServiceTelemetry } from './service-telemetry.js'

const EXIT_CODES_HELP = `
Environment: MYCEL_NODES (host:port list), MYCEL_TOKEN, MYCEL_CA_FILE, MYCEL_TLS=1, MYCEL_TIMEOUT_MS.
Exit codes: 0 ok, 1 usage or invalid input, 2 not found, 3 unavailable or timed out,
4 authentication or permission, 5 other failure, 78 invalid service configuration, 130 interrupted.`

async function program(): Promise<Command> {
  const [
    { contentCommands },
    { pinCommands },
    { serviceCommands },
    { statusCommand },
    { tokenCommand },
    { addGlobalOptions },
  ] = await Promise.all([
    import('./commands/content.js'),
    import('./commands/pins.js'),
    import('./commands/services.js'),
    import('./commands/status.js'),
    import('./commands/token.js'),
    import('./output.js'),
  ])
  const cmd = addGlobalOptions(
    new Command('mycel')
      .description('Mycel: a content-addressed storage cluster with IPFS-compatible CIDs')
      .version('0.1.0', '-V, --version')
      .showHelpAfterError('(run with --help for usage)')
      .addHelpText('after', EXIT_CODES_HELP)
      .exitOverride(),
  )
  contentCommands(cmd)
  pinCommands(cmd)
  statusCommand(cmd)
  tokenCommand(cmd)
  serviceCommands(cmd)
  // Subcommands report usage errors the same way (exit 1, help hint), not with process.exit.
  for (const sub of cmd.commands) {
    sub.exitOverride().showHelpAfterError('(run with --help for usage)')
    for (const subsub of sub.commands) subsub.exitOverride().showHelpAfterError('(run with --help for usage)')
  }
  return cmd
}

async function main(argv: string[]): Promise<void> {
  try {
    await startServiceTelemetry(argv)
  } catch (err) {
    if (!(err instanceof ConfigInvalidError)) throw err
    console.error(`mycel: ${err.message}`)
    process.exitCode = 78 // EX_CONFIG
    return
  }
  const { EXIT, exitCodeOf } = await import('./output.js')
  const cmd = await program()
  if (argv.length === 0) {
    cmd.outputHelp()
    process.exitCode = EXIT.USAGE
    return
  }
  try {
    await cmd.parseAsync(argv, { from: 'user' })
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; a usage error has been printed by commander.
      process.exitCode = err.exitCode === 0 ? EXIT.OK : EXIT.USAGE
      return
    }
    if ((err as NodeJS.ErrnoException).code === 'EPIPE') return // the reader went away (| head)
    if (err instanceof ConfigInvalidError) {
      console.error(`mycel: ${err.message}`)
      process.exitCode = 78 // EX_CONFIG
      return
    }
    console.error(`mycel: ${err instanceof Error ? err.message : String(err)}`)
    process.exitCode = exitCodeOf(err)
  }
}

void main(process.argv.slice(2))
