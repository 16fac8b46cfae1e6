import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { fallbackRouter } from '@helia/fallback-router'
import { withHTTP } from '@helia/http'
import { createVerifiedFetch, type VerifiedFetch } from '@helia/verified-fetch'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import { createHeliaLight, type Helia } from 'helia'
import { CID } from 'multiformats/cid'
import * as json from 'multiformats/codecs/json'
import { sha256 } from 'multiformats/hashes/sha2'
import { writeCar } from '../helpers/car.js'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { deterministicBytes } from '../helpers/data.js'

const FILES = [
  { path: 'site/index.html', bytes: Buffer.from('<!doctype html><title>mycel</title><p>hello\n') },
  { path: 'site/big.bin', bytes: deterministicBytes(1_500_000, 'verified-fetch-big') },
  { path: 'site/docs/ünï code.txt', bytes: Buffer.from('verified unicode\n') },
  { path: 'site/docs/empty.txt', bytes: new Uint8Array() },
]

/**
 * @helia/verified-fetch with Mycel as its only gateway (no delegated routers, no libp2p, no
 * other gateway): every block it fetches from Mycel's trustless gateway is hash-checked by the
 * client, and the bytes it returns must be the bytes added. Every request it makes is recorded:
 * all of them must go to Mycel.
 */
describe('@helia/verified-fetch against Mycel as its only trustless gateway', () => {
  let cluster: TestCluster
  let helia: Helia
  let verifiedFetch: VerifiedFetch
  let root: string
  let doc: CID
  const requested: string[] = []
  const realFetch = globalThis.fetch
  before(async () => {
    cluster = await startCluster({ nodes: 3 })
    const form = new FormData()
    for (const f of FILES) form.append('file', new Blob([f.bytes]), encodeURIComponent(f.path))
    const res = await realFetch(`${cluster.gatewayUrl}/api/v0/add?cid-version=1`, {
      method: 'POST',
      body: form,
    })
    const lines = (await res.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { Name: string; Hash: string })
    root = lines.find((l) => l.Name === 'site')?.Hash as string
    const bytes = dagCbor.encode({ name: 'a document', site: CID.parse(root) })
    doc = CID.createV1(dagCbor.code, await sha256.digest(bytes))
    const car = new FormData()
    car.append('file', new Blob([await writeCar([doc], [{ cid: doc, bytes }])]), 'doc.car')
    assert.equal(
      (await realFetch(`${cluster.gatewayUrl}/api/v0/dag/import`, { method: 'POST', body: car })).status,
      200,
    )
    globalThis.fetch = (input: string | URL | Request, init?: RequestInit) => {
      requested.push(input instanceof Request ? input.url : String(input))
      return realFetch(input, init)
    }
    // @helia/http without its delegated routers and public gateways; loopback over plain HTTP allowed.
    helia = withHTTP(createHeliaLight({ codecs: [dagCbor, dagJson, json] }), {
      delegatedRouters: [],
      recursiveGateways: [],
      allowInsecure: true,
      allowLocal: true,
    })
    // Mycel is the one provider of everything. Helia consults routers that call themselves
    // "fallback" only after the others, and with no other router it never gets there, so this
    // gateway router is made an ordinary one.
    const mycel = fallbackRouter({ gateways: [cluster.gatewayUrl], shuffle: false })
    ;(mycel as unknown as { capabilities: () => string[] }).capabilities = () => []
    helia.addRouter(mycel)
    await helia.start()
    verifiedFetch = await createVerifiedFetch(helia)
  })
  after(async () => {
    globalThis.fetch = realFetch
    await verifiedFetch?.stop()
    await helia?.stop()
    await cluster?.destroy()
  })

  it('fetches and verifies files by CID and by directory path, byte for byte', async () => {
    for (const f of FILES) {
      const rel = f.path.split('/').slice(1).map(encodeURIComponent).join('/')
      const res = await verifiedFetch(`ipfs://${root}/${rel}`)
      assert.equal(res.status, 200, f.path)
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), Buffer.from(f.bytes), f.path)
    }
    // The directory itself answers with its index.html.
    const dir = await verifiedFetch(`ipfs://${root}/`)
    assert.equal(dir.status, 200)
    assert.equal(await dir.text(), (FILES[0] as { bytes: Buffer }).bytes.toString())
  })

  it('fetches a dag-cbor document and follows its link to the directory', async () => {
    const res = await verifiedFetch(`ipfs://${doc}`, { headers: { Accept: 'application/vnd.ipld.dag-cbor' } })
    assert.equal(res.status, 200)
    const value = dagCbor.decode(new Uint8Array(await res.arrayBuffer())) as { name: string; site: CID }
    assert.equal(value.name, 'a document')
    assert.equal(value.site.toString(), root)
    const through = await verifiedFetch(`ipfs://${doc}/site/docs/empty.txt`)
    assert.equal(through.status, 200)
    assert.equal((await through.arrayBuffer()).byteLength, 0)
  })

  it('asked nothing of anyone but Mycel', () => {
    assert.ok(requested.length > 0)
    const elsewhere = requested.filter((u) => !u.startsWith(cluster.gatewayUrl))
    assert.deepEqual(elsewhere, [])
  })
})
