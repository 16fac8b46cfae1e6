import { createToken, SCOPES, type Scope, tokenFileLine } from '@mycel/core'
import type { Command } from 'commander'
import { print, UsageError } from '../output.js'

/** token create: a new API token and its line for MYCEL_API_TOKENS_FILE (nothing is stored). */
export function tokenCommand(program: Command): void {
  const token = program.command('token').description('API tokens for MYCEL_API_TOKENS_FILE')
  token
    .command('create')
    .description('print a new random token and the line to append to the nodes’ tokens file')
    .requiredOption('--name <name>', 'who or what uses the token')
    .option('--scopes <list>', `comma-separated: ${SCOPES.join(', ')}`, 'read')
    .action((o, cmd: Command) => {
      const scopes = String(o.scopes).split(',') as Scope[]
      const bad = scopes.filter((s) => !SCOPES.includes(s))
      if (bad.length > 0)
        throw new UsageError(`unknown scope "${bad.join(',')}" (scopes: ${SCOPES.join(', ')})`)
      if (!/^[A-Za-z0-9._@-]{1,64}$/.test(o.name))
        throw new UsageError('--name must be 1-64 letters, digits or ._@-')
      const secret = createToken()
      const line = tokenFileLine(o.name, scopes, secret)
      print(cmd, { name: o.name, scopes, token: secret, line }, () =>
        [
          `token:  ${secret}`,
          `line for MYCEL_API_TOKENS_FILE (the file holds only the hash):`,
          line,
          'Give the token to the client (mycel --token or MYCEL_TOKEN); it is not shown again.',
        ].join('\n'),
      )
    })
}
