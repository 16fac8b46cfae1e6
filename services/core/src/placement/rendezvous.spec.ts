import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { type PlacementNode, placeCopies, rankNodes } from './rendezvous.js'

const nodes = (n: number, zones = n): PlacementNode[] =>
  Array.from({ length: n }, (_, i) => ({ id: `node-${i}`, zone: `zone-${i % zones}`, weight: 1 }))

const keys = Array.from({ length: 4000 }, () => randomBytes(32))

describe('rendezvous placement', () => {
  it('is deterministic and independent of input order', () => {
    const a = nodes(7)
    const b = [...a].reverse()
    for (const key of keys.slice(0, 200)) {
      assert.deepEqual(
        placeCopies(key, a, 3).map((n) => n.id),
        placeCopies(key, b, 3).map((n) => n.id),
      )
    }
  })

  it('returns every node once, best first', () => {
    const all = nodes(5)
    const placed = placeCopies(keys[0] as Uint8Array, all, 3)
    assert.equal(placed.length, 5)
    assert.equal(new Set(placed.map((n) => n.id)).size, 5)
  })

  it('puts copies in distinct zones first', () => {
    // 6 nodes in 3 zones: the first 3 copies must cover all 3 zones.
    const all = nodes(6, 3)
    for (const key of keys.slice(0, 500)) {
      const first = placeCopies(key, all, 3).slice(0, 3)
      assert.equal(new Set(first.map((n) => n.zone)).size, 3)
    }
  })

  it('spreads keys evenly and follows weights', () => {
    const all = nodes(4)
    ;(all[0] as PlacementNode).weight = 2
    const wins = new Map<string, number>()
    for (const key of keys) {
      const top = rankNodes(key, all)[0] as PlacementNode
      wins.set(top.id, (wins.get(top.id) ?? 0) + 1)
    }
    // Expected shares: 2/5 for node-0, 1/5 for the others.
    const share0 = (wins.get('node-0') ?? 0) / keys.length
    assert.ok(Math.abs(share0 - 0.4) < 0.04, `node-0 share ${share0}`)
    for (const id of ['node-1', 'node-2', 'node-3']) {
      const share = (wins.get(id) ?? 0) / keys.length
      assert.ok(Math.abs(share - 0.2) < 0.04, `${id} share ${share}`)
    }
  })

  it('moves only the keys the new node wins when a node joins', () => {
    const before = nodes(5)
    const after = nodes(6)
    let moved = 0
    for (const key of keys) {
      const a = rankNodes(key, before)[0] as PlacementNode
      const b = rankNodes(key, after)[0] as PlacementNode
      if (a.id !== b.id) {
        moved++
        assert.equal(b.id, 'node-5', 'a key may only move to the joining node')
      }
    }
    // Optimal share is 1/6.
    assert.ok(Math.abs(moved / keys.length - 1 / 6) < 0.03, `moved ${moved / keys.length}`)
  })
})
