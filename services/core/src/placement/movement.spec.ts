import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { placementMovement } from './movement.js'
import { type PlacementNode, placeCopies } from './rendezvous.js'

// Deterministic keys (multihash-like), so a failure reproduces.
const keys = Array.from({ length: 10_000 }, (_, i) => createHash('sha256').update(`key-${i}`).digest())

const node = (id: string, zone: string, weight: number): PlacementNode => ({ id, zone, weight })

/** One zone, mixed capacities. */
const flat = [1, 1, 1, 1, 2, 2, 1, 1.5].map((w, i) => node(`n${i}`, 'z', w))
/** Three zones of different total weight, mixed capacities. */
const zoned = [
  node('a0', 'a', 1),
  node('a1', 'a', 2),
  node('a2', 'a', 1),
  node('b0', 'b', 1),
  node('b1', 'b', 1),
  node('c0', 'c', 2),
  node('c1', 'c', 1),
  node('c2', 'c', 1),
  node('c3', 'c', 1),
]

/** Every copy that moved went to (join) or came from (leave) the node that changed. */
function assertOnlyChangedNodeMoves(before: PlacementNode[], after: PlacementNode[], changed: string): void {
  for (const key of keys.slice(0, 2000)) {
    const a = placeCopies(key, before, 3)
      .slice(0, 3)
      .map((n) => n.id)
    const b = placeCopies(key, after, 3)
      .slice(0, 3)
      .map((n) => n.id)
    for (const id of b) if (!a.includes(id)) assert.ok(id === changed || a.includes(changed), `${id} gained`)
    for (const id of a) if (!b.includes(id)) assert.ok(id === changed || b.includes(changed), `${id} lost`)
  }
}

describe('placement movement on membership changes (simulation)', () => {
  const cases: Array<{ name: string; before: PlacementNode[]; after: PlacementNode[]; changed: string }> = [
    { name: 'join, one zone, weight 1', before: flat, after: [...flat, node('new', 'z', 1)], changed: 'new' },
    { name: 'join, one zone, weight 2', before: flat, after: [...flat, node('new', 'z', 2)], changed: 'new' },
    {
      name: 'leave, one zone, weight 1',
      before: flat,
      after: flat.filter((n) => n.id !== 'n3'),
      changed: 'n3',
    },
    {
      name: 'leave, one zone, weight 2',
      before: flat,
      after: flat.filter((n) => n.id !== 'n4'),
      changed: 'n4',
    },
    {
      name: 'join, 3 zones, small zone',
      before: zoned,
      after: [...zoned, node('b2', 'b', 1)],
      changed: 'b2',
    },
    {
      name: 'join, 3 zones, large zone',
      before: zoned,
      after: [...zoned, node('c4', 'c', 2)],
      changed: 'c4',
    },
    { name: 'leave, 3 zones', before: zoned, after: zoned.filter((n) => n.id !== 'a1'), changed: 'a1' },
  ]
  for (const c of cases) {
    it(`${c.name}: moves within 1.2x of the optimal share`, () => {
      const m = placementMovement(keys, c.before, c.after, 3)
      assert.ok(
        m.ratio <= 1.2,
        `moved ${m.moved} copies, optimal ${m.optimal.toFixed(0)} (ratio ${m.ratio.toFixed(3)})`,
      )
      // A placement that moved less than the optimal would leave the new node under-filled.
      assert.ok(m.ratio >= 0.8, `ratio ${m.ratio.toFixed(3)} is implausibly low`)
      assertOnlyChangedNodeMoves(c.before, c.after, c.changed)
    })
  }
})
