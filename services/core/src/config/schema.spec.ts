import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ConfigInvalidError } from '../errors.js'
import { loadGatewayEnv, loadNodeEnv } from './schema.js'

describe('membership configuration', () => {
  it('node defaults are the production timings', () => {
    const cfg = loadNodeEnv({})
    assert.equal(cfg.MYCEL_PROBE_INTERVAL_MS, 1_000)
    assert.equal(cfg.MYCEL_PROBE_TIMEOUT_MS, 500)
    assert.equal(cfg.MYCEL_INDIRECT_PROBES, 3)
    assert.equal(cfg.MYCEL_DEAD_AFTER_MS, 300_000)
    assert.equal(cfg.MYCEL_WEIGHT, 1)
    assert.ok(cfg.MYCEL_HOST.length > 0)
    assert.deepEqual(cfg.MYCEL_PEERS, [])
  })

  it('takes seeds from a list and a DNS name', () => {
    const cfg = loadNodeEnv({
      MYCEL_PEERS: 'a:7070, b:7071',
      MYCEL_SEED_DNS: 'mycel-node-headless.ns.svc:7070',
    })
    assert.deepEqual(cfg.MYCEL_PEERS, ['a:7070', 'b:7071'])
    assert.equal(cfg.MYCEL_SEED_DNS, 'mycel-node-headless.ns.svc:7070')
  })

  it('refuses a probe timeout that leaves no time for indirect probes, and a zero weight', () => {
    assert.throws(
      () =>
        loadNodeEnv({ MYCEL_PROBE_INTERVAL_MS: '1000', MYCEL_PROBE_TIMEOUT_MS: '1000', MYCEL_WEIGHT: '0' }),
      (err: unknown) =>
        err instanceof ConfigInvalidError &&
        /MYCEL_PROBE_TIMEOUT_MS: must be below MYCEL_PROBE_INTERVAL_MS/.test(err.message) &&
        /MYCEL_WEIGHT/.test(err.message),
    )
    assert.throws(() => loadNodeEnv({ MYCEL_SEED_DNS: 'not a name' }), /MYCEL_SEED_DNS/)
  })

  it('a gateway needs seeds: MYCEL_PEERS or MYCEL_SEED_DNS', () => {
    assert.throws(() => loadGatewayEnv({}), /MYCEL_PEERS: required \(or MYCEL_SEED_DNS\)/)
    assert.equal(loadGatewayEnv({ MYCEL_SEED_DNS: 'nodes', MYCEL_AUTH: 'off' }).MYCEL_SEED_DNS, 'nodes')
    assert.deepEqual(loadGatewayEnv({ MYCEL_PEERS: 'n0:7070', MYCEL_AUTH: 'off' }).MYCEL_PEERS, ['n0:7070'])
  })
})
