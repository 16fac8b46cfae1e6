import type { MemberStatus } from '@mycel/cli'
import type { Member, MemberState } from '@mycel/core'
import type { TestCluster } from './cluster.js'
import { membershipOf } from './grpc.js'
import { poll } from './poll.js'

/** Each running node's own view, by node index. */
export async function views(cluster: TestCluster, indexes: number[]): Promise<Map<number, Member[]>> {
  const out = new Map<number, Member[]>()
  await Promise.all(
    indexes.map(async (i) => {
      const v = await membershipOf(cluster.nodeAddress(i))
      if (v !== undefined) out.set(i, v)
    }),
  )
  return out
}

export const stateIn = (members: readonly { id: string; state: string }[], id: string) =>
  members.find((m) => m.id === id)?.state

/** Resolves once every node in `observers` and the gateway see node `i` in one of `states`; ms taken. */
export async function everyoneSees(
  cluster: TestCluster,
  i: number,
  states: MemberState[],
  observers: number[],
  timeoutMs: number,
): Promise<number> {
  const started = Date.now()
  const id = cluster.nodeId(i)
  await poll(`all see node ${i} ${states.join('/')}`, timeoutMs, async () => {
    const v = await views(cluster, observers)
    if (v.size < observers.length) return undefined
    for (const members of v.values())
      if (!states.includes(stateIn(members, id) as MemberState)) return undefined
    const gw = await cluster.members()
    return states.includes(stateIn(gw, id) as MemberState) ? true : undefined
  })
  return Date.now() - started
}

/** Resolves once every node of the cluster and the gateway see all of them alive. */
export async function allAlive(cluster: TestCluster, timeoutMs = 60_000): Promise<MemberStatus[]> {
  const n = cluster.nodes.length
  const indexes = [...Array(n).keys()]
  await poll(`every node sees ${n} alive`, timeoutMs, async () => {
    const v = await views(cluster, indexes)
    if (v.size < n) return undefined
    for (const members of v.values()) {
      if (members.filter((m) => m.state === 'alive').length !== n) return undefined
    }
    return true
  })
  return cluster.waitForMembers(
    (ms) => ms.filter((m) => m.state === 'alive' && m.reachable).length === n,
    timeoutMs,
    `${n} alive`,
  )
}
