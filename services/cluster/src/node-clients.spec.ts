import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { type AddressInfo, createServer, type Socket } from 'node:net'
import { describe, it } from 'node:test'
import { Metadata, Server, ServerCredentials } from '@grpc/grpc-js'
import { type Member, type MembershipView, replicate } from '@mycel/core'
import {
  BlockServiceService,
  encodeDurability,
  fromProtoDurability,
  GetNodeStatsResponse,
  PutBlocksRequest,
  toProtoDurability,
} from '@mycel/proto'
import { deadlineIn, encodePutBlocksRequest, encodePutShardRequest, NodeClients } from './node-clients.js'

describe('encodePutBlocksRequest', () => {
  it('matches the generated encoding and decodes to the same request', () => {
    for (const [seq, cidLen, dataLen] of [
      [1n, 36, 262_144],
      [300n, 34, 1],
      [2n ** 40n + 7n, 36, 0],
      [0n, 0, 5],
      [127n, 36, 128],
    ] as const) {
      const cid = randomBytes(cidLen)
      const data = randomBytes(dataLen)
      const ours = encodePutBlocksRequest(seq, cid, data)
      const generated = Buffer.from(
        PutBlocksRequest.encode({ seq, cid, data, shard: Buffer.alloc(0) }).finish(),
      )
      assert.ok(ours.equals(generated), `seq ${seq}, cid ${cidLen}, data ${dataLen}`)
      const back = PutBlocksRequest.decode(ours)
      assert.equal(back.seq, seq)
      assert.ok(Buffer.from(back.cid).equals(cid))
      assert.ok(Buffer.from(back.data).equals(data))
    }
  })

  it('carries the durability record like the generated encoder', () => {
    for (const copies of [1, 3, 200]) {
      const cid = randomBytes(36)
      const data = randomBytes(1000)
      const policy = replicate(copies)
      const ours = encodePutBlocksRequest(9n, cid, data, encodeDurability(policy))
      const generated = PutBlocksRequest.encode({
        seq: 9n,
        cid,
        data,
        durability: toProtoDurability(policy),
        shard: Buffer.alloc(0),
      }).finish()
      assert.ok(ours.equals(Buffer.from(generated)), `replicate:${copies}`)
      assert.deepEqual(fromProtoDurability(PutBlocksRequest.decode(ours).durability), policy)
    }
  })
})

/** The one member of these specs' views: node n0 at `address`, alive. */
function aliveMember(address: string, incarnation: number): Member {
  return { id: 'n0', address, zone: 'z', host: 'h', weight: 1, state: 'alive', incarnation }
}

/**
 * NodeClients for one member behind a listener that accepts TCP but never speaks HTTP/2: a gRPC
 * channel to it stays CONNECTING, as a dial to a vanished address does.
 */
async function silentNode(): Promise<{ address: string; clients: NodeClients; close: () => void }> {
  const accepted = new Set<Socket>()
  const silent = createServer((socket) => accepted.add(socket))
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const address = `127.0.0.1:${(silent.address() as AddressInfo).port}`
  const member = aliveMember(address, 0)
  const view: MembershipView = {
    members: () => [member],
    placementMembers: () => [member],
    onChange: () => () => {},
  }
  const clients = new NodeClients(view, { connectTimeoutMs: 300 })
  const close = () => {
    clients.close()
    for (const socket of accepted) socket.destroy()
    silent.close()
  }
  return { address, clients, close }
}

describe('NodeClients', () => {
  it('replaces a client whose connection attempt outlasts the connect timeout, failing its queued calls', async () => {
    const { address, clients, close } = await silentNode()
    try {
      const first = clients.clientFor(address)
      const t0 = Date.now()
      const err = await new Promise<Error | null>((resolve) =>
        first.getNodeStats({}, new Metadata(), { deadline: deadlineIn(20_000) }, (e) => resolve(e)),
      )
      assert.ok(err, 'the call fails')
      assert.ok(Date.now() - t0 < 10_000, `failed after ${Date.now() - t0} ms, not at its 20 s deadline`)
      const second = clients.clientFor(address)
      assert.notEqual(second, first, 'a new client replaces the stuck one')
      assert.equal(clients.nodes[0]?.client, second)
    } finally {
      close()
    }
  })

  it('gives the ShardService client of a replaced channel a new channel too', async () => {
    const { address, clients, close } = await silentNode()
    try {
      const shards = clients.shardClientFor(address)
      const first = clients.clientFor(address)
      await new Promise<void>((resolve) =>
        first.getNodeStats({}, new Metadata(), { deadline: deadlineIn(20_000) }, () => resolve()),
      )
      assert.notEqual(clients.clientFor(address), first)
      const again = clients.shardClientFor(address)
      assert.notEqual(again, shards, 'not the client on the closed channel')
      assert.equal(again.getChannel(), clients.clientFor(address).getChannel())
    } finally {
      close()
    }
  })
})

describe('NodeClients when a member comes back', () => {
  it('redials a restarted member at once instead of waiting out the reconnect backoff', async () => {
    // A free port: nothing listens there until the "restart".
    const probe = createServer()
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    const address = `127.0.0.1:${(probe.address() as AddressInfo).port}`
    await new Promise<void>((resolve) => probe.close(() => resolve()))
    let member = aliveMember(address, 1)
    const listeners = new Set<(m: readonly Member[]) => void>()
    const view: MembershipView = {
      members: () => [member],
      placementMembers: () => [member],
      onChange: (l) => {
        listeners.add(l)
        return () => listeners.delete(l)
      },
    }
    const announce = (m: Member) => {
      member = m
      for (const l of listeners) l([m])
    }
    // A long backoff, so a channel that failed once stays failed for the whole test.
    const clients = new NodeClients(view, {
      channelOptions: {
        'grpc.initial_reconnect_backoff_ms': 30_000,
        'grpc.max_reconnect_backoff_ms': 30_000,
      },
    })
    const server = new Server()
    const stats = (timeoutMs: number) =>
      new Promise<Error | null>((resolve) =>
        clients
          .clientFor(address)
          .getNodeStats({}, new Metadata(), { deadline: deadlineIn(timeoutMs) }, (err) => resolve(err)),
      )
    try {
      assert.ok(await stats(5_000), 'nothing listens yet: the call fails')
      server.addService(BlockServiceService, {
        getNodeStats: (_call: unknown, cb: (e: null, r: GetNodeStatsResponse) => void) =>
          cb(null, GetNodeStatsResponse.fromPartial({ nodeId: 'n0' })),
      } as never)
      await new Promise<void>((resolve, reject) =>
        server.bindAsync(address, ServerCredentials.createInsecure(), (err) =>
          err ? reject(err) : resolve(),
        ),
      )
      assert.ok(await stats(2_000), 'the old channel is still in its backoff: the call fails at once')
      const before = clients.clientFor(address)
      announce({ ...member, incarnation: 2 })
      assert.notEqual(clients.clientFor(address), before, 'a restarted member gets a new channel')
      assert.equal(await stats(5_000), null, 'and the next call reaches it')
      const ready = clients.clientFor(address)
      announce({ ...member, incarnation: 3 })
      assert.equal(clients.clientFor(address), ready, 'a READY channel is kept')
    } finally {
      clients.close()
      server.forceShutdown()
    }
  })
})

describe('encodePutShardRequest', () => {
  it('matches the generated encoding of a request carrying a shard', () => {
    for (const [seq, shardLen] of [
      [1n, 65_588],
      [2n ** 33n, 1],
      [9n, 127],
      [10n, 128],
    ] as const) {
      const cid = randomBytes(36)
      const shard = randomBytes(shardLen)
      const ours = encodePutShardRequest(seq, cid, shard)
      const generated = Buffer.from(
        PutBlocksRequest.encode({ seq, cid, data: Buffer.alloc(0), shard }).finish(),
      )
      assert.ok(ours.equals(generated), `seq ${seq}, shard ${shardLen}`)
    }
  })
})
