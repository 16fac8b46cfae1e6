import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Member } from '@mycel/core'
import { mergeView } from './remote-membership.js'

const member = (id: string, state: Member['state'], incarnation: number): Member => ({
  id,
  address: `${id}:7070`,
  zone: 'default',
  host: id,
  weight: 1,
  state,
  incarnation,
})

describe('mergeView (the gateway following a node)', () => {
  const known = new Map([
    ['a', member('a', 'alive', 3)],
    ['b', member('b', 'left', 5)],
  ])

  it('keeps newer records against a view that is behind, and takes newer ones from it', () => {
    const next = mergeView(known, [member('a', 'alive', 2), member('b', 'alive', 6)])
    assert.deepEqual(next?.get('a'), member('a', 'alive', 3))
    assert.deepEqual(next?.get('b'), member('b', 'alive', 6))
  })

  it('at the same incarnation the more severe state wins', () => {
    const next = mergeView(known, [member('a', 'suspect', 3), member('b', 'alive', 5)])
    assert.equal(next?.get('a')?.state, 'suspect')
    assert.equal(next?.get('b')?.state, 'left')
  })

  it('drops members the view no longer lists, adds new ones, and reports no change when there is none', () => {
    const next = mergeView(known, [member('a', 'alive', 3), member('c', 'joining', 1)])
    assert.deepEqual([...(next?.keys() ?? [])], ['a', 'c'])
    assert.equal(mergeView(known, [member('a', 'alive', 3), member('b', 'left', 5)]), undefined)
  })
})
