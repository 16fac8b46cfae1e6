import type { MemberState, MembershipView } from '@mycel/core'
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client'

/**
 * A service's Prometheus registry with prom-client's process and Node.js metrics under `prefix`:
 * CPU, memory, file descriptors, GC, and event-loop lag (`<prefix>nodejs_eventloop_lag_seconds`
 * and its `_p50_seconds`/`_p90_seconds`/`_p99_seconds`/`_max_seconds` summaries).
 */
export function createServiceRegistry(prefix: string): Registry {
  const registry = new Registry()
  // 10 ms resolution: lag below that is not worth an alert and coarser sampling costs less.
  collectDefaultMetrics({ register: registry, prefix, eventLoopMonitoringPrecision: 10 })
  return registry
}

export const MEMBER_STATES: readonly MemberState[] = ['joining', 'alive', 'suspect', 'left', 'dead']

/**
 * `<name>{state}`: members of the process's membership view by state, read at scrape time, one
 * series per state (zeros included, so a state that empties shows 0 instead of vanishing).
 * Whatever implements MembershipView (static today, gossip later) is measured the same way.
 */
export function registerMembershipGauge(
  registry: Registry,
  name: string,
  view: () => MembershipView | undefined,
): Gauge<'state'> {
  return new Gauge({
    name,
    help: 'Cluster members known to this process, by membership state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const counts = new Map<MemberState, number>(MEMBER_STATES.map((s) => [s, 0]))
      for (const m of view()?.members() ?? []) counts.set(m.state, (counts.get(m.state) ?? 0) + 1)
      for (const [state, n] of counts) this.set({ state }, n)
    },
  })
}
