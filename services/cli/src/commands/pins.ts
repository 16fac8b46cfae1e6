import type { Command } from 'commander'
import { clientFor, print, table } from '../output.js'

/** pin add|rm|ls. */
export function pinCommands(program: Command): void {
  const pin = program.command('pin').description('pin, unpin and list pins (kept on every node)')

  pin
    .command('add')
    .description('pin a CID after checking that its whole DAG is stored')
    .argument('<cid>', 'the root to pin')
    .option('--durability <policy>', 'durability recorded with the pin: replicate:R')
    .option('--name <name>', 'a name for the pin')
    .action(async (cid: string, o, cmd: Command) => {
      const client = clientFor(cmd)
      try {
        const res = await client.pin(cid, { durability: o.durability, name: o.name })
        print(cmd, res, () => `pinned ${res.cid} (${res.blocks} blocks checked)`)
      } finally {
        client.close()
      }
    })

  pin
    .command('rm')
    .description('remove a pin')
    .argument('<cid>', 'the pinned root')
    .action(async (cid: string, _o, cmd: Command) => {
      const client = clientFor(cmd)
      try {
        const res = await client.unpin(cid)
        print(cmd, res, () => `unpinned ${res.cid}`)
      } finally {
        client.close()
      }
    })

  pin
    .command('ls')
    .description('list pins (all, or the given CIDs)')
    .argument('[cid...]', 'only these CIDs (an error if one is not pinned)')
    .option('-q, --quiet', 'print only the CIDs')
    .action(async (cids: string[], o, cmd: Command) => {
      const client = clientFor(cmd)
      try {
        const pins = await client.listPins({ cids })
        print(cmd, pins, () => {
          if (o.quiet) return pins.map((p) => p.cid).join('\n')
          if (pins.length === 0) return 'no pins'
          return table(
            ['CID', 'DURABILITY', 'NAME', 'PINNED AT'],
            pins.map((p) => [p.cid, p.durability || 'default', p.name, p.updatedAt.toISOString()]),
          )
        })
      } finally {
        client.close()
      }
    })
}
