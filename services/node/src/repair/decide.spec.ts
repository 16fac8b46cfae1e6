import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type Member, type MemberState, replicate } from '@mycel/core'
import { decide, decideShards, type TargetAnswer } from './decide.js'

const member = (id: string, state: MemberState = 'alive'): Member => ({
  id,
  address: `${id}:1`,
  zone: 'z',
  host: id,
  weight: 1,
  state,
  incarnation: 0,
})

const held = (policy = replicate(3)): TargetAnswer => ({ held: true, policy })
const absent: TargetAnswer = { held: false }
const ids = (ms: readonly Member[]) => ms.map((m) => m.id)

describe('repair decisions', () => {
  const [a, b, c] = [member('a'), member('b'), member('c')]

  it('the first holder in placement order pushes the missing copies', () => {
    const d = decide({
      targets: [a, b, c],
      selfId: 'a',
      policy: replicate(3),
      answers: new Map([
        ['b', held()],
        ['c', absent],
      ]),
    })
    assert.equal(d.role, 'target')
    assert.equal(d.responsible, true)
    assert.deepEqual(ids(d.push), ['c'])
    assert.equal(d.copies, 2)
    assert.equal(d.mayDelete, false)
  })

  it('a lower-ranked holder leaves the push to the first holder', () => {
    const d = decide({
      targets: [a, b, c],
      selfId: 'b',
      policy: replicate(3),
      answers: new Map([
        ['a', held()],
        ['c', absent],
      ]),
    })
    assert.equal(d.responsible, false)
    assert.deepEqual(d.push, [])
    assert.deepEqual(ids(d.missing), ['c'])
  })

  it('takes over when the higher holders do not hold it', () => {
    const d = decide({
      targets: [a, b, c],
      selfId: 'c',
      policy: replicate(3),
      answers: new Map([
        ['a', absent],
        ['b', absent],
      ]),
    })
    assert.equal(d.responsible, true)
    assert.deepEqual(ids(d.push), ['a', 'b'])
    assert.equal(d.copies, 1)
  })

  it('never pushes to nor counts on a member that left: its copy is unknown until it is dead', () => {
    const gone = member('a', 'left')
    const d = decide({
      targets: [gone, b, c],
      selfId: 'b',
      policy: replicate(3),
      answers: new Map([['c', held()]]),
    })
    assert.equal(d.responsible, true, 'b is the first routable holder')
    assert.deepEqual(d.push, [])
    assert.deepEqual(ids(d.unknown), ['a'])
  })

  it('treats a target that did not answer as unknown, not as missing', () => {
    const d = decide({
      targets: [a, b, c],
      selfId: 'a',
      policy: replicate(3),
      answers: new Map([['b', held()]]),
    })
    assert.deepEqual(ids(d.unknown), ['c'])
    assert.deepEqual(d.push, [])
  })

  it('a misplaced copy may go once every target holds the block', () => {
    const d = decide({
      targets: [a, b, c],
      selfId: 'x',
      policy: replicate(3),
      answers: new Map([
        ['a', held()],
        ['b', held()],
        ['c', held()],
      ]),
    })
    assert.equal(d.role, 'misplaced')
    assert.equal(d.mayDelete, true)
    assert.equal(d.responsible, false)
    assert.equal(d.copies, 4)
  })

  it('a misplaced copy stays while any target is unroutable, even if the others hold it', () => {
    const d = decide({
      targets: [a, b, member('c', 'left')],
      selfId: 'x',
      policy: replicate(3),
      answers: new Map([
        ['a', held()],
        ['b', held()],
      ]),
    })
    assert.equal(d.mayDelete, false)
    assert.deepEqual(d.push, [])
  })

  it('a misplaced copy waits for the responsible target when some targets hold it', () => {
    const d = decide({
      targets: [a, b, c],
      selfId: 'x',
      policy: replicate(3),
      answers: new Map([
        ['a', held()],
        ['b', absent],
        ['c', held()],
      ]),
    })
    assert.equal(d.responsible, false)
    assert.deepEqual(d.push, [])
    assert.equal(d.mayDelete, false)
  })

  it('the holder of the only copy, misplaced, pushes it to every routable target', () => {
    const d = decide({
      targets: [a, b, c],
      selfId: 'x',
      policy: replicate(3),
      answers: new Map([
        ['a', absent],
        ['b', absent],
        ['c', absent],
      ]),
    })
    assert.equal(d.responsible, true)
    assert.deepEqual(ids(d.push), ['a', 'b', 'c'])
    assert.equal(d.mayDelete, false, 'not before the pushes are confirmed')
    assert.equal(d.copies, 1)
  })

  it('adopts a stronger record held by a target', () => {
    const d = decide({
      targets: [a, b],
      selfId: 'a',
      policy: replicate(2),
      answers: new Map([['b', held(replicate(4))]]),
    })
    assert.deepEqual(d.upgrade, replicate(4))
    const same = decide({
      targets: [a, b],
      selfId: 'a',
      policy: replicate(2),
      answers: new Map([['b', held(replicate(1))]]),
    })
    assert.equal(same.upgrade, undefined)
  })
})

describe('shard repair decisions (ec:2+1)', () => {
  const owners = [member('a'), member('b'), member('c')]

  it('the first owner holding a shard rebuilds the missing ones; the block survives one more loss', () => {
    const base = { k: 2, m: 1, owners, listings: [undefined, [1], []] }
    const a = decideShards({ ...base, selfId: 'a', local: [0] })
    assert.equal(a.role, 'owner')
    assert.equal(a.responsible, true)
    assert.deepEqual(a.missing, [2])
    assert.equal(a.found, 2)
    assert.equal(a.copies, 1)
    assert.equal(a.unrecoverable, false)
    const b = decideShards({ ...base, selfId: 'b', local: [1], listings: [[0], undefined, []] })
    assert.equal(b.responsible, false, 'b ranks after a, which holds a shard')
    assert.deepEqual(b.missing, [2])
  })

  it('an owner that lost its own shard leaves the rebuild to the first holder', () => {
    const d = decideShards({ k: 2, m: 1, owners, selfId: 'a', local: [], listings: [undefined, [1], [2]] })
    assert.deepEqual(d.missing, [0])
    assert.equal(d.responsible, false)
    assert.equal(d.copies, 1)
  })

  it('hands a shard to its owner once that owner answers; keeps it while the owner cannot be asked', () => {
    const x = 'x'
    const answered = decideShards({ k: 2, m: 1, owners, selfId: x, local: [1], listings: [[0], [], [2]] })
    assert.equal(answered.role, 'misplaced')
    assert.deepEqual(answered.handOff, [1])
    assert.deepEqual(answered.missing, [1])
    assert.equal(answered.responsible, false, 'owner a holds a shard: it rebuilds, x hands off')
    const away = [member('a'), member('b', 'left'), member('c')]
    const kept = decideShards({ k: 2, m: 1, owners: away, selfId: x, local: [1], listings: [[0], [], [2]] })
    assert.deepEqual(kept.handOff, [])
    assert.deepEqual(kept.waiting, [1])
    assert.deepEqual(kept.unknown, [1], 'a left owner is never written to nor assumed empty')
  })

  it('a misplaced holder is responsible only when no owner holds any shard', () => {
    const d = decideShards({ k: 2, m: 1, owners, selfId: 'x', local: [0, 1], listings: [[], [], []] })
    assert.equal(d.responsible, true)
    assert.deepEqual(d.missing, [0, 1, 2])
    assert.deepEqual(d.handOff, [0, 1])
  })

  it('fewer than K shards found is unrecoverable and ranks first in the queue', () => {
    const d = decideShards({ k: 2, m: 1, owners, selfId: 'a', local: [0], listings: [undefined, [], []] })
    assert.equal(d.unrecoverable, true)
    assert.equal(d.copies, 0)
    const rescued = decideShards({
      k: 2,
      m: 1,
      owners,
      selfId: 'a',
      local: [0],
      listings: [undefined, [], []],
      elsewhere: [1],
    })
    assert.equal(rescued.unrecoverable, false, 'a shard on a node ranked after the owners counts')
    assert.equal(rescued.copies, 1)
  })
})
