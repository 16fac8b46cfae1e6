import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createLogger, type Member, MembershipEvents, type MembershipView } from '@mycel/core'
import { ClusterBlockstore } from './cluster-blockstore.js'
import { NodeClients } from './node-clients.js'
import { WriteSession } from './write-session.js'

/** A membership that knows no node (a gateway whose seeds never answered). */
function emptyMembership(): MembershipView {
  const events = new MembershipEvents()
  return {
    members: (): readonly Member[] => [],
    placementMembers: (): readonly Member[] => [],
    onChange: (l) => events.onChange(l),
  }
}

describe('writes with no storage node known', () => {
  const noop = { inc() {} }
  const log = createLogger('test', 'silent')

  it('a write session cannot be opened: the quorum is not reached (503), nothing is acknowledged', () => {
    const clients = new NodeClients(emptyMembership())
    const cluster = new ClusterBlockstore(
      clients,
      { replication: 3, writeQuorum: 2, rpcTimeoutMs: 1000, maxInflightPerNode: 1 },
      log,
      { blockFetches: noop, readRepairs: noop },
    )
    for (const r of [undefined, 1, 3]) {
      assert.throws(() => cluster.newWriteSession(r), {
        name: 'QuorumNotReachedError',
        message: /no storage node is known/,
      })
    }
    clients.close()
  })

  it('a session never takes a write quorum of zero', () => {
    for (const [replication, writeQuorum] of [
      [0, 0],
      [3, 0],
      [2, 3],
    ] as const) {
      assert.throws(
        () =>
          new WriteSession({
            nodes: [],
            replication,
            writeQuorum,
            ackTimeoutMs: 1000,
            maxInflightPerNode: 1,
            logger: log,
          }),
        RangeError,
      )
    }
  })
})
