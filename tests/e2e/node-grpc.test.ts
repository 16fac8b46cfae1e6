import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { credentials, Metadata, status } from '@grpc/grpc-js'
import { CID } from '@mycel/core'
import type { BlockServiceClient } from '@mycel/proto'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { blockClient, getBlock, hasBlocks, putBlocks, rawBlock, readyBlockClient } from '../helpers/grpc.js'

describe('storage node internal gRPC API', () => {
  let cluster: TestCluster
  let client: BlockServiceClient
  before(async () => {
    cluster = await startCluster({ nodes: 1 })
    client = blockClient(cluster.nodeAddress(0))
  })
  after(async () => {
    client?.close()
    await cluster?.destroy()
  })

  it('streams many blocks in, acknowledges each, and serves them verified', async () => {
    const blocks = Array.from({ length: 200 }, () =>
      rawBlock(randomBytes(4096 + Math.floor(Math.random() * 60_000))),
    )
    const { acks, error } = await putBlocks(client, blocks)
    assert.equal(error, undefined)
    assert.equal(acks.length, 200)
    assert.ok(acks.every((a) => a.errorCode === ''))
    assert.deepEqual(new Set(acks.map((a) => a.seq)), new Set(blocks.map((_, i) => BigInt(i + 1))))
    for (const b of blocks.slice(0, 20))
      assert.ok((await getBlock(client, b.cid)).equals(Buffer.from(b.bytes)))
    assert.deepEqual(await hasBlocks(client, [blocks[0]!.cid, rawBlock(randomBytes(8)).cid]), [true, false])
  })

  it('rejects a block that does not hash to its CID, and keeps the stream going', async () => {
    const good = rawBlock(randomBytes(1000))
    const liar = { cid: rawBlock(randomBytes(1000)).cid, bytes: randomBytes(1000) }
    const { acks } = await putBlocks(client, [liar, good])
    const bySeq = new Map(acks.map((a) => [a.seq, a]))
    assert.equal(bySeq.get(1n)?.errorCode, 'HASH_MISMATCH')
    assert.equal(bySeq.get(2n)?.errorCode, '')
    assert.deepEqual(await hasBlocks(client, [liar.cid]), [false])
  })

  it('rejects blocks over 2 MiB and messages over 4 MiB', async () => {
    const big = rawBlock(randomBytes(3 * 1024 * 1024))
    const { acks } = await putBlocks(client, [big])
    assert.equal(acks[0]?.errorCode, 'BLOCK_TOO_LARGE')
    const huge = rawBlock(randomBytes(5 * 1024 * 1024))
    const res = await putBlocks(client, [huge])
    assert.equal(res.error?.code, status.RESOURCE_EXHAUSTED)
  })

  it('answers NOT_FOUND and INVALID_ARGUMENT precisely', async () => {
    await assert.rejects(getBlock(client, rawBlock(randomBytes(10)).cid), { code: status.NOT_FOUND })
    await assert.rejects(
      new Promise((resolve, reject) =>
        client.getBlock({ cid: Buffer.from('not a cid'), acceptShard: false, shardIndex: 0 }, (err, res) =>
          err ? reject(err) : resolve(res),
        ),
      ),
      { code: status.INVALID_ARGUMENT },
    )
  })

  it('deletes blocks and reports stats', async () => {
    const b = rawBlock(randomBytes(777))
    await putBlocks(client, [b])
    const del = (cid: CID) =>
      new Promise<boolean>((resolve, reject) =>
        client.deleteBlock({ cid: Buffer.from(cid.bytes) }, (err, res) =>
          err ? reject(err) : resolve(res.existed),
        ),
      )
    assert.equal(await del(b.cid), true)
    assert.equal(await del(b.cid), false)
    const stats = await new Promise<{ nodeId: string; blocks: bigint }>((resolve, reject) =>
      client.getNodeStats({}, (err, res) => (err ? reject(err) : resolve(res))),
    )
    assert.match(stats.nodeId, /^node-[0-9a-f]{16}$/)
    assert.ok(stats.blocks >= 201n)
  })

  it('serves the standard health service and reflection', async () => {
    const { HealthClient } = await healthClient()
    const health = new HealthClient(cluster.nodeAddress(0), credentials.createInsecure())
    const res = await new Promise<{ status: number }>((resolve, reject) =>
      health.check(
        { service: 'mycel.v1.BlockService' },
        new Metadata(),
        (err: Error | null, r: { status: number }) => (err ? reject(err) : resolve(r)),
      ),
    )
    assert.equal(res.status, 1) // SERVING
    health.close()
  })

  it('keeps every acknowledged block across a crash (SIGKILL right after the acks)', async () => {
    const blocks = Array.from({ length: 300 }, () => rawBlock(randomBytes(16_384)))
    const { acks } = await putBlocks(client, blocks)
    assert.ok(acks.every((a) => a.errorCode === ''))
    await cluster.nodes[0]!.kill()
    await cluster.nodes[0]!.start()
    const again = await readyBlockClient(cluster.nodeAddress(0))
    try {
      assert.ok(
        (
          await hasBlocks(
            again,
            blocks.map((b) => b.cid),
          )
        ).every(Boolean),
      )
      for (const b of blocks.slice(0, 10))
        assert.ok((await getBlock(again, b.cid)).equals(Buffer.from(b.bytes)))
    } finally {
      again.close()
    }
    client.close()
    client = blockClient(cluster.nodeAddress(0))
  })

  it('drains on SIGTERM: exits 0 and keeps what it acknowledged', async () => {
    const blocks = Array.from({ length: 100 }, () => rawBlock(randomBytes(50_000)))
    const put = putBlocks(client, blocks)
    const code = await cluster.nodes[0]!.stop('SIGTERM')
    const { acks } = await put
    assert.equal(code, 0)
    await cluster.nodes[0]!.start()
    const again = await readyBlockClient(cluster.nodeAddress(0))
    try {
      const acked = acks.filter((a) => a.errorCode === '').map((a) => blocks[Number(a.seq) - 1]!.cid)
      assert.ok((await hasBlocks(again, acked)).every(Boolean), `${acked.length} acknowledged blocks kept`)
    } finally {
      again.close()
    }
    client.close()
    client = blockClient(cluster.nodeAddress(0))
  })
})

async function healthClient() {
  const grpc = await import('@grpc/grpc-js')
  const loader = await import('@grpc/proto-loader')
  const { protoPath } = (await import('grpc-health-check')) as unknown as { protoPath: string }
  const def = loader.loadSync(protoPath)
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { health: { v1: { Health: new (addr: string, creds: unknown) => HealthStub } } }
  }
  return { HealthClient: pkg.grpc.health.v1.Health }
}

interface HealthStub {
  check(req: { service: string }, md: Metadata, cb: (err: Error | null, r: { status: number }) => void): void
  close(): void
}
