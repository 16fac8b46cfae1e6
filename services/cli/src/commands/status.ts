import type { Command } from 'commander'
import { clientFor, formatBytes, print, table } from '../output.js'

/** status: the cluster's health as a table (every member, its state and storage). */
export function statusCommand(program: Command): void {
  program
    .command('status')
    .description('cluster health: every member with its state and storage, quorums, readiness')
    .action(async (_o, cmd: Command) => {
      const client = clientFor(cmd)
      try {
        const s = await client.status()
        print(cmd, s, () =>
          [
            `${s.membersUp}/${s.membersTotal} members up · replication ${s.replication}, write quorum ${s.writeQuorum} · ${
              s.ready ? 'ready' : 'NOT READY (fewer members up than the write quorum)'
            } · ${s.pins} pins · answered by ${s.answeredBy}`,
            '',
            table(
              ['NODE', 'ADDRESS', 'ZONE', 'STATE', 'UP', 'BLOCKS', 'USED', 'CAPACITY', 'VERSION'],
              s.members.map((m) => [
                m.nodeId,
                m.address,
                m.zone,
                m.state,
                m.reachable ? 'yes' : `no (${m.error})`,
                m.reachable ? String(m.blocks) : '-',
                m.reachable ? formatBytes(m.blockBytes) : '-',
                m.reachable ? (m.capacityBytes === 0 ? 'unlimited' : formatBytes(m.capacityBytes)) : '-',
                m.version || '-',
              ]),
            ),
          ].join('\n'),
        )
        if (!s.ready) process.exitCode = 3
      } finally {
        client.close()
      }
    })
}
