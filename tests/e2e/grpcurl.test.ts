import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { startCluster, type TestCluster } from '../helpers/cluster.js'

const run = promisify(execFile)

/** grpcurl, built by `make grpcurl` (make test passes its path in MYCEL_GRPCURL). */
const GRPCURL = process.env.MYCEL_GRPCURL ?? join(process.cwd(), '.tools/grpcurl-v1.9.4/grpcurl')

/** A generic gRPC client uses the public API through reflection alone (no .proto files). */
describe('grpcurl against a node, through reflection', () => {
  let cluster: TestCluster
  const grpcurl = async (args: string[], input?: string) => {
    const child = run(GRPCURL, ['-plaintext', ...args], { maxBuffer: 16 * 1024 * 1024 })
    if (input !== undefined) {
      child.child.stdin?.end(input)
    }
    return (await child).stdout
  }

  before(async () => {
    assert.ok(existsSync(GRPCURL), `grpcurl not found at ${GRPCURL}: run make grpcurl`)
    cluster = await startCluster({ nodes: 1 })
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('lists the services and describes the public API', async () => {
    const services = (await grpcurl([cluster.nodeAddress(0), 'list'])).trim().split('\n')
    assert.ok(services.includes('mycel.v1.ApiService'), services.join(','))
    assert.ok(services.includes('mycel.v1.BlockService'))
    const methods = (await grpcurl([cluster.nodeAddress(0), 'list', 'mycel.v1.ApiService']))
      .trim()
      .split('\n')
    assert.deepEqual(methods.sort(), [
      'mycel.v1.ApiService.Add',
      'mycel.v1.ApiService.Cat',
      'mycel.v1.ApiService.ClusterStatus',
      'mycel.v1.ApiService.List',
      'mycel.v1.ApiService.ListPins',
      'mycel.v1.ApiService.Pin',
      'mycel.v1.ApiService.Stat',
      'mycel.v1.ApiService.Unpin',
    ])
    const add = await grpcurl([cluster.nodeAddress(0), 'describe', 'mycel.v1.ApiService.Add'])
    assert.match(add, /rpc Add \( stream \.mycel\.v1\.AddRequest \) returns \( \.mycel\.v1\.AddResponse \)/)
  })

  it('calls Add (client streaming, JSON messages), Stat and Cat', async () => {
    const text = 'hello from grpcurl\n'
    const messages = [
      JSON.stringify({ options: { filename: 'hello.txt', durability: 'replicate:1' } }),
      JSON.stringify({ data: Buffer.from(text.slice(0, 6)).toString('base64') }),
      JSON.stringify({ data: Buffer.from(text.slice(6)).toString('base64') }),
    ].join('\n')
    const added = JSON.parse(
      await grpcurl(['-d', '@', cluster.nodeAddress(0), 'mycel.v1.ApiService/Add'], messages),
    ) as {
      cid: string
      size: string
      pinned: string[]
    }
    assert.match(added.cid, /^bafkrei/)
    assert.equal(added.size, String(text.length))
    assert.deepEqual(added.pinned, [added.cid])
    const stat = JSON.parse(
      await grpcurl([
        '-d',
        JSON.stringify({ path: added.cid }),
        cluster.nodeAddress(0),
        'mycel.v1.ApiService/Stat',
      ]),
    ) as { cid: string; type: string; size: string }
    assert.deepEqual([stat.cid, stat.type, stat.size], [added.cid, 'ENTRY_TYPE_RAW', String(text.length)])
    const cat = JSON.parse(
      await grpcurl([
        '-d',
        JSON.stringify({ path: added.cid }),
        cluster.nodeAddress(0),
        'mycel.v1.ApiService/Cat',
      ]),
    ) as { data: string }
    assert.equal(Buffer.from(cat.data, 'base64').toString(), text)
  })

  it('reports errors with their gRPC status', async () => {
    await assert.rejects(
      grpcurl(['-d', '{"path":"nope"}', cluster.nodeAddress(0), 'mycel.v1.ApiService/Stat']),
      (err: { stderr: string }) =>
        /Code: InvalidArgument/.test(err.stderr) && /invalid CID "nope"/.test(err.stderr),
    )
  })
})
