import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { seedDialAddresses, seedResolver, splitSeedName } from './seeds.js'

describe('seeds', () => {
  it('splits a DNS seed into name and port', () => {
    assert.deepEqual(splitSeedName('nodes.ns.svc', 7070), { name: 'nodes.ns.svc', port: 7070 })
    assert.deepEqual(splitSeedName('localhost:7171', 7070), { name: 'localhost', port: 7171 })
    assert.deepEqual(splitSeedName('[::1]:7171', 7070), { name: '::1', port: 7171 })
    assert.deepEqual(splitSeedName('[::1]', 7070), { name: '::1', port: 7070 })
  })

  it('dial addresses: the static seeds plus the DNS name itself, with its port', () => {
    assert.deepEqual(seedDialAddresses({ peers: ['a:7070'], defaultPort: 7070 }), ['a:7070'])
    assert.deepEqual(seedDialAddresses({ peers: [], dns: 'nodes.ns.svc', defaultPort: 7070 }), [
      'nodes.ns.svc:7070',
    ])
    assert.deepEqual(seedDialAddresses({ peers: ['a:7070'], dns: '[::1]:7171', defaultPort: 7070 }), [
      'a:7070',
      '[::1]:7171',
    ])
  })

  it('adds every address of the DNS name to the static seeds, IPv6 bracketed, and re-resolves', async () => {
    let answer = ['10.0.0.1', 'fd00::2']
    let lookups = 0
    const seeds = seedResolver({
      peers: ['static:7070'],
      dns: 'nodes.ns.svc',
      defaultPort: 7070,
      cacheMs: 0,
      resolve: async () => {
        lookups++
        return answer
      },
    })
    assert.deepEqual(await seeds(), ['static:7070', '10.0.0.1:7070', '[fd00::2]:7070'])
    answer = ['10.0.0.1', '10.0.0.3']
    assert.deepEqual(await seeds(), ['static:7070', '10.0.0.1:7070', '10.0.0.3:7070'])
    assert.equal(lookups, 2)
  })

  it('a name that does not resolve stays a seed itself, to be resolved by the dial', async () => {
    const seeds = seedResolver({
      peers: ['static:7070'],
      dns: 'nowhere.invalid',
      defaultPort: 7070,
      resolve: async () => {
        throw new Error('ENOTFOUND')
      },
    })
    assert.deepEqual(await seeds(), ['static:7070', 'nowhere.invalid:7070'])
  })
})
