import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { create, type KuboRPCClient } from 'kubo-rpc-client'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { deterministicBytes, sha256 } from '../helpers/data.js'
import { KUBO_VECTORS } from '../helpers/kubo-vectors.js'

/** The real Kubo HTTP client, unchanged, against Mycel's Kubo RPC subset. */
describe('kubo-rpc-client against the gateway', () => {
  let cluster: TestCluster
  let client: KuboRPCClient
  before(async () => {
    cluster = await startCluster({ nodes: 3 })
    client = create({ url: `${cluster.gatewayUrl}/api/v0` })
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('adds with the CID Kubo gives, reporting progress', async () => {
    const v = KUBO_VECTORS.find((x) => x.size === 5_243_003)
    assert.ok(v)
    const bytes = deterministicBytes(v.size, v.seed)
    const progress: number[] = []
    const added = await client.add(bytes, { cidVersion: 1, progress: (n: number) => progress.push(n) })
    assert.equal(added.cid.toString(), v.cidV1)
    assert.equal(added.size, Number(v.kuboSize))
    assert.ok(progress.length > 1, 'progress events arrived')
    assert.equal(progress.at(-1), v.size)
    const res = await fetch(`${cluster.gatewayUrl}/ipfs/${v.cidV1}`)
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), sha256(bytes))
  })

  it('adds with Kubo defaults when asked for CIDv0', async () => {
    const v = KUBO_VECTORS.find((x) => x.size === 262_145)
    assert.ok(v)
    const added = await client.add(deterministicBytes(v.size, v.seed), { cidVersion: 0 })
    assert.equal(added.cid.toString(), v.cidV0)
  })

  it('reports the version', async () => {
    const version = await client.version()
    assert.match(String(version.version), /^\d+\.\d+\.\d+/)
  })

  it('reports an identity the client parses as a libp2p PeerID', async () => {
    const id = await client.id()
    assert.match(id.id.toString(), /^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$/)
    assert.match(String(id.agentVersion), /^mycel\//)
  })

  it('surfaces Mycel errors as client errors', async () => {
    await assert.rejects(
      client.add(Buffer.from('x'), { chunker: 'rabin-1-2-3' }),
      /chunker "rabin-1-2-3" is not supported/,
    )
  })
})
