import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { CarReader } from '@ipld/car'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { kuboAdd } from '../helpers/http.js'

/** Trustless gateway details the conformance suite checks: identity CIDs in CARs, raw byte ranges. */
describe('trustless gateway: identity CIDs, raw ranges, X-Ipfs-Roots', () => {
  let cluster: TestCluster
  let url: string
  before(async () => {
    cluster = await startCluster({ nodes: 3 })
    url = cluster.gatewayUrl
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('never writes an identity CID as a block, even with dups=y', async () => {
    const id = 'bafkqaf3imvwgy3zaneqgc3janfxgy2lomvscay3jmqfa'
    const res = await fetch(`${url}/ipfs/${id}`, { headers: { Accept: 'application/vnd.ipld.car; dups=y' } })
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /dups=y/)
    const car = await CarReader.fromBytes(new Uint8Array(await res.arrayBuffer()))
    const blocks = []
    for await (const b of car.blocks()) blocks.push(b)
    assert.equal(blocks.length, 0)
  })

  it('serves one byte range of a raw block (206) with X-Ipfs-Roots', async () => {
    const { lines } = await kuboAdd(url, [{ name: 'r.txt', bytes: Buffer.from('0123456789abcdef') }])
    const cid = lines[0]?.Hash as string
    const res = await fetch(`${url}/ipfs/${cid}?format=raw`, { headers: { Range: 'bytes=2-5' } })
    assert.equal(res.status, 206)
    assert.equal(res.headers.get('content-range'), 'bytes 2-5/16')
    assert.equal(res.headers.get('x-ipfs-roots'), cid)
    assert.equal(await res.text(), '2345')
    const whole = await fetch(`${url}/ipfs/${cid}?format=raw`)
    assert.equal(whole.status, 200)
    assert.equal(await whole.text(), '0123456789abcdef')
  })
})
