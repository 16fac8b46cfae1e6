import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type Member, type MemberState, replicate } from '@mycel/core'
import { decide, type TargetAnswer } from './decide.js'

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
