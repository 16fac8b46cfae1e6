import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { RepairStats } from '@mycel/proto'
import { clusterRepairStatus, type NodeRepairStatus, nodeRepairStatus } from './repair-status.js'

/** RepairStats as a node sends it: zeros unless given. */
const stats = (over: Partial<RepairStats> = {}): RepairStats => ({
  blocksScanned: 0n,
  underReplicated: 0n,
  misplaced: 0n,
  unavailable: 0n,
  queued: 0n,
  blocksRepaired: 0n,
  bytesRepaired: 0n,
  blocksHandedOff: 0n,
  bytesHandedOff: 0n,
  rateBytesPerSecond: 0,
  lastPassStartedAtMs: 0n,
  lastPassCompletedAtMs: 0n,
  passRunning: false,
  passScanned: 0n,
  shardsMissing: 0n,
  shardBlocksUnrecoverable: 0n,
  shardsRebuilt: 0n,
  shardsHandedOff: 0n,
  shardsMisplaced: 0n,
  ...over,
})

const node = (over: Partial<NodeRepairStatus>): { repair: NodeRepairStatus } => ({
  repair: { ...(nodeRepairStatus(stats()) as NodeRepairStatus), ...over },
})

describe('cluster repair status', () => {
  it('adds the nodes up and reports the oldest complete pass', () => {
    const s = clusterRepairStatus([
      node({
        underReplicated: 2,
        misplaced: 1,
        queued: 3,
        bytesRepaired: 10,
        rateBytesPerSecond: 5,
        lastPassCompletedAt: '2030-01-02T00:00:00.000Z',
      }),
      node({
        underReplicated: 1,
        queued: 1,
        bytesRepaired: 5,
        rateBytesPerSecond: 1,
        lastPassCompletedAt: '2030-01-01T00:00:00.000Z',
        shardsMissing: 2,
        shardsRebuilt: 4,
        shardsMisplaced: 1,
      }),
    ])
    assert.equal(s.underReplicated, 3)
    assert.equal(s.shardsMissing, 2)
    assert.equal(s.repair.shardsRebuilt, 4)
    assert.equal(s.shardsMisplaced, 1)
    assert.equal(s.misplaced, 1)
    assert.equal(s.repair.queued, 4)
    assert.equal(s.repair.bytesRepaired, 15)
    assert.equal(s.repair.rate, 6)
    assert.equal(s.repair.lastPassCompletedAt, '2030-01-01T00:00:00.000Z')
  })

  it('has no cluster pass time while any node has not completed one', () => {
    const s = clusterRepairStatus([node({ lastPassCompletedAt: '2030-01-01T00:00:00.000Z' }), node({})])
    assert.equal(s.repair.lastPassCompletedAt, null)
  })

  it('turns unset timestamps into null, set ones into ISO time', () => {
    assert.equal(node({}).repair.lastPassCompletedAt, null)
    const set = nodeRepairStatus(stats({ lastPassStartedAtMs: 1_000n, lastPassCompletedAtMs: 2_000n }))
    assert.equal(set?.lastPassCompletedAt, '1970-01-01T00:00:02.000Z')
  })
})
