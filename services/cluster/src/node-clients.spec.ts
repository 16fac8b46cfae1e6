import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { replicate } from '@mycel/core'
import { encodeDurability, fromProtoDurability, PutBlocksRequest, toProtoDurability } from '@mycel/proto'
import { encodePutBlocksRequest } from './node-clients.js'

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
      const generated = Buffer.from(PutBlocksRequest.encode({ seq, cid, data }).finish())
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
      }).finish()
      assert.ok(ours.equals(Buffer.from(generated)), `replicate:${copies}`)
      assert.deepEqual(fromProtoDurability(PutBlocksRequest.decode(ours).durability), policy)
    }
  })
})
