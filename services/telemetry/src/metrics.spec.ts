import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Member, MemberState, MembershipView } from '@mycel/core'
import { createServiceRegistry, registerMembershipGauge } from './metrics.js'

describe('service metrics helpers', () => {
  it('the registry carries the process and event-loop metrics under the prefix', async () => {
    const registry = createServiceRegistry('mycel_test_')
    const text = await registry.metrics()
    assert.match(text, /^mycel_test_nodejs_eventloop_lag_seconds /m)
    assert.match(text, /^mycel_test_process_resident_memory_bytes /m)
  })

  it('members are counted by state, every state present', async () => {
    const registry = createServiceRegistry('mycel_test_')
    const member = (id: string, state: MemberState): Member => ({
      id,
      address: `${id}:1`,
      zone: 'default',
      host: id,
      weight: 1,
      state,
      incarnation: 0,
    })
    const members = [member('a', 'alive'), member('b', 'suspect'), member('c', 'dead'), member('d', 'alive')]
    const view: MembershipView = {
      members: () => members,
      placementMembers: () => members.filter((m) => m.state !== 'dead'),
      onChange: () => () => {},
    }
    registerMembershipGauge(registry, 'mycel_test_members', () => view)
    const values = (await registry.getSingleMetric('mycel_test_members')?.get())?.values ?? []
    const byState = Object.fromEntries(values.map((v) => [v.labels.state, v.value]))
    assert.deepEqual(byState, { joining: 0, alive: 2, suspect: 1, left: 0, dead: 1 })
  })
})
