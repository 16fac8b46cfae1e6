import { MEMBER_STATES, type Member } from '@mycel/core'
import { Counter, Gauge, type Registry } from 'prom-client'
import type { SwimObserver } from './swim.js'

/** The membership's Prometheus metrics (mycel_node_membership_*), fed by the protocol's observer. */
export function membershipMetrics(registry: Registry, members: () => readonly Member[]): SwimObserver {
  new Gauge({
    name: 'mycel_node_membership_members',
    help: 'Members this node knows, by state (dead ones until their tombstone expires)',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const list = members()
      for (const state of MEMBER_STATES) this.set({ state }, list.filter((m) => m.state === state).length)
    },
  })
  const counter = (name: string, help: string) => new Counter({ name, help, registers: [registry] })
  const probes = counter('mycel_node_membership_probes_total', 'Direct probes (Ping) sent')
  const probeFailures = counter(
    'mycel_node_membership_probe_failures_total',
    'Direct probes unanswered in time (indirect probes followed)',
  )
  const suspicions = counter(
    'mycel_node_membership_suspicions_total',
    'Members this node declared suspect after direct and indirect probes failed',
  )
  const refutations = counter(
    'mycel_node_membership_refutations_total',
    'Suspicions or deaths claimed about this node that it refuted by raising its incarnation',
  )
  const deaths = counter(
    'mycel_node_membership_dead_declarations_total',
    'Members this node declared dead (suspect or left for MYCEL_DEAD_AFTER_MS)',
  )
  return {
    probeSent: () => probes.inc(),
    probeFailed: () => probeFailures.inc(),
    suspicionRaised: () => suspicions.inc(),
    refuted: () => refutations.inc(),
    deadDeclared: () => deaths.inc(),
  }
}
