import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { create, type KuboRPCClient } from 'kubo-rpc-client'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { writeCar } from '../helpers/car.js'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { kuboAdd } from '../helpers/http.js'

/** Kubo's pin/add, pin/rm and pin/ls on the gateway, with the real kubo-rpc-client and raw HTTP. */
describe('Kubo RPC pins (3 nodes and a gateway)', () => {
  let cluster: TestCluster
  let kubo: KuboRPCClient
  const rpc = async (command: string, query: string) => {
    const res = await fetch(`${cluster.gatewayUrl}/api/v0/${command}${query}`, { method: 'POST' })
    const chunked = res.headers.get('x-chunked-output')
    return { status: res.status, text: await res.text(), chunked, type: res.headers.get('content-type') }
  }
  before(async () => {
    cluster = await startCluster({ nodes: 3 })
    kubo = create({ url: `${cluster.gatewayUrl}/api/v0` })
  })
  after(async () => {
    await cluster?.destroy()
  })

  const pinned = async () => {
    const out: string[] = []
    for await (const p of kubo.pin.ls()) out.push(p.cid.toString())
    return out
  }

  it('add pins by default (Kubo’s pin=true) and not with pin=false', async () => {
    const yes = await kubo.add(randomBytes(4000), { cidVersion: 1 })
    const no = await kubo.add(randomBytes(4000), { cidVersion: 1, pin: false })
    const all = await pinned()
    assert.ok(all.includes(yes.cid.toString()))
    assert.ok(!all.includes(no.cid.toString()))
    const byArg: Array<{ cid: string; type: string }> = []
    for await (const p of kubo.pin.ls({ paths: [yes.cid] }))
      byArg.push({ cid: p.cid.toString(), type: p.type })
    assert.deepEqual(byArg, [{ cid: yes.cid.toString(), type: 'recursive' }])
    await assert.rejects(async () => {
      for await (const _ of kubo.pin.ls({ paths: [no.cid] })) void _
    }, /is not pinned/)
  })

  it('dag/import pins the CAR roots by default (pin-roots), and not with pin-roots=false', async () => {
    const exportCar = async (cid: string) => {
      const res = await fetch(`${cluster.gatewayUrl}/api/v0/dag/export?arg=${cid}`, { method: 'POST' })
      return Buffer.from(await res.arrayBuffer())
    }
    const a = await kubo.add(randomBytes(300_000), { cidVersion: 1, pin: false })
    const b = await kubo.add(randomBytes(300_000), { cidVersion: 1, pin: false })
    const carA = await exportCar(a.cid.toString())
    const carB = await exportCar(b.cid.toString())
    const roots: string[] = []
    for await (const r of kubo.dag.import([carA])) roots.push(r.root.cid.toString())
    assert.deepEqual(roots, [a.cid.toString()])
    for await (const _ of kubo.dag.import([carB], { pinRoots: false })) void _
    const all = await pinned()
    assert.ok(all.includes(a.cid.toString()), 'the imported root is pinned')
    assert.ok(!all.includes(b.cid.toString()), 'pin-roots=false pins nothing')
  })

  it('pin add, ls with names, rm round trip with kubo-rpc-client', async () => {
    const { cid } = await kubo.add(randomBytes(700_000), { cidVersion: 1, pin: false })
    assert.equal((await kubo.pin.add(cid, { name: 'backup' })).toString(), cid.toString())
    const named: Array<{ cid: string; name?: string }> = []
    for await (const p of kubo.pin.ls({ paths: [cid], names: true }))
      named.push({ cid: p.cid.toString(), name: p.name })
    assert.deepEqual(named, [{ cid: cid.toString(), name: 'backup' }])
    assert.equal((await kubo.pin.rm(cid)).toString(), cid.toString())
    assert.ok(!(await pinned()).includes(cid.toString()))
    await assert.rejects(kubo.pin.rm(cid), /is not pinned/)
  })

  it('answers Kubo’s JSON shapes and headers: {"Pins"}, {"Keys"}, stream lines, progress', async () => {
    const added = await kuboAdd(cluster.gatewayUrl, [{ name: 'a', bytes: randomBytes(1000) }], '?pin=false')
    const cid = added.lines[0]?.Hash as string
    const add = await rpc('pin/add', `?arg=${cid}&progress=true`)
    assert.equal(add.status, 200, add.text)
    assert.deepEqual(
      add.text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
      [{ Progress: 1 }, { Pins: [cid] }],
    )
    const again = await rpc('pin/add', `?arg=${cid}`)
    assert.deepEqual(JSON.parse(again.text), { Pins: [cid] })
    const ls = await rpc('pin/ls', `?arg=${cid}&type=recursive`)
    assert.deepEqual(JSON.parse(ls.text), { Keys: { [cid]: { Type: 'recursive' } } })
    const stream = await rpc('pin/ls', `?arg=${cid}&stream=true&names=true`)
    assert.deepEqual(JSON.parse(stream.text), { Cid: cid, Type: 'recursive', Name: '' })
    const rm = await rpc('pin/rm', `?arg=${cid}`)
    assert.deepEqual(JSON.parse(rm.text), { Pins: [cid] })
    // As Kubo (go-ipfs-cmds): JSON streams keep Content-Type application/json and add
    // X-Chunked-Output: 1; single values have no such header.
    for (const r of [add, again, ls, stream, rm]) assert.match(r.type ?? '', /^application\/json/)
    assert.deepEqual(
      [add, again, ls, stream, rm].map((r) => r.chunked),
      ['1', null, null, '1', null],
    )
  })

  it('pins the CID a path names', async () => {
    const form = [
      { name: 'd/x.txt', bytes: Buffer.from('x') },
      { name: 'd/y.txt', bytes: Buffer.from('y') },
    ]
    const added = await kuboAdd(cluster.gatewayUrl, form, '?pin=false')
    const dir = added.lines.find((l) => l.Name === 'd')?.Hash
    const x = added.lines.find((l) => l.Name === 'd/x.txt')?.Hash
    const res = await rpc('pin/add', `?arg=/ipfs/${dir}/x.txt`)
    assert.deepEqual(JSON.parse(res.text), { Pins: [x] })
  })

  it('pins plain JSON and CBOR documents and a dag-json node that links to them', async () => {
    const block = async (codec: number, bytes: Uint8Array) => ({
      cid: CID.createV1(codec, await sha256.digest(bytes)),
      bytes,
    })
    const json = await block(0x0200, new TextEncoder().encode('{"kind":"plain json"}'))
    const cbor = await block(0x51, new Uint8Array([0xa1, 0x61, 0x61, 0x01])) // {"a": 1}
    const doc = await block(
      0x0129,
      new TextEncoder().encode(`{"c":{"/":"${cbor.cid}"},"j":{"/":"${json.cid}"}}`),
    )
    const car = await writeCar([doc.cid], [doc, json, cbor])
    for await (const _ of kubo.dag.import([car], { pinRoots: false })) void _
    for (const { cid } of [json, cbor, doc]) {
      const r = await rpc('pin/add', `?arg=${cid}`)
      assert.equal(r.status, 200, `pin/add ${cid}: ${r.text}`)
      assert.deepEqual(JSON.parse(r.text), { Pins: [cid.toString()] })
    }
    const all = await pinned()
    for (const { cid } of [json, cbor, doc]) assert.ok(all.includes(cid.toString()), `${cid} is pinned`)
  })

  it('refuses what Mycel does not do, in Kubo’s error shape', async () => {
    const { cid } = await kubo.add(randomBytes(100), { cidVersion: 1 })
    for (const [command, query, status, message] of [
      ['pin/add', `?arg=${cid}&recursive=false`, 400, /only recursive pins are supported/],
      ['pin/rm', `?arg=${cid}&recursive=false`, 400, /only recursive pins are supported/],
      ['pin/ls', '?type=indirect', 400, /type=indirect is not supported/],
      ['pin/ls', '?type=bogus', 400, /invalid type "bogus"/],
      ['pin/add', `?arg=${cid}&frobnicate=1`, 400, /unknown option "frobnicate"/],
      ['pin/add', '', 400, /argument "arg" is required/],
      [
        'pin/add',
        '?arg=bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
        404,
        /not found in the DAG of/,
      ],
      ['pin/rm', '?arg=bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy', 404, /is not pinned/],
      ['pin/add', '?arg=nope', 400, /invalid CID/],
    ] as const) {
      const r = await rpc(command, query)
      assert.equal(r.status, status, `${command}${query}: ${r.text}`)
      const body = JSON.parse(r.text) as { Message: string; Type: string }
      assert.equal(body.Type, 'error')
      assert.match(body.Message, message)
    }
    const get = await fetch(`${cluster.gatewayUrl}/api/v0/pin/ls`)
    assert.equal(get.status, 405)
  })
})
