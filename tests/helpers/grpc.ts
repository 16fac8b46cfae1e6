import { createHash } from 'node:crypto'
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js'
import { membersFromRecords } from '@mycel/cluster'
import { CID, type Member } from '@mycel/core'
import { BlockServiceClient, MembershipServiceClient, type PutBlocksResponse } from '@mycel/proto'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'

export function rawBlock(bytes: Uint8Array): { cid: CID; bytes: Uint8Array } {
  const digest = createDigest(0x12, createHash('sha256').update(bytes).digest())
  return { cid: CID.createV1(raw.code, digest) as CID, bytes }
}

export function blockClient(address: string): BlockServiceClient {
  return new BlockServiceClient(address, credentials.createInsecure(), {
    'grpc.max_send_message_length': 16 * 1024 * 1024,
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
  })
}

const deadline = () => ({ deadline: new Date(Date.now() + 10_000) })

/** A client whose channel is connected: a node that just restarted may take a moment to accept. */
export async function readyBlockClient(address: string): Promise<BlockServiceClient> {
  const client = blockClient(address)
  await new Promise<void>((resolve, reject) =>
    client.waitForReady(new Date(Date.now() + 15_000), (err) => (err ? reject(err) : resolve())),
  )
  return client
}

/** Sends blocks on one PutBlocks stream and collects every ack (or the stream's error). */
export function putBlocks(
  client: BlockServiceClient,
  blocks: Array<{ cid: CID | Uint8Array; bytes: Uint8Array }>,
): Promise<{ acks: PutBlocksResponse[]; error?: ServiceError }> {
  return new Promise((resolve) => {
    const acks: PutBlocksResponse[] = []
    const call = client.putBlocks(new Metadata(), deadline())
    call.on('data', (r: PutBlocksResponse) => acks.push(r))
    call.on('error', (error: ServiceError) => resolve({ acks, error }))
    call.on('end', () => resolve({ acks }))
    blocks.forEach((b, i) => {
      const cid = b.cid instanceof Uint8Array ? b.cid : b.cid.bytes
      call.write({
        seq: BigInt(i + 1),
        cid: Buffer.from(cid),
        data: Buffer.from(b.bytes),
        shard: Buffer.alloc(0),
      })
    })
    call.end()
  })
}

export function getBlock(client: BlockServiceClient, cid: CID): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    client.getBlock(
      { cid: Buffer.from(cid.bytes), acceptShard: false, shardIndex: 0 },
      new Metadata(),
      deadline(),
      (err, res) => (err ? reject(err) : resolve(res.data)),
    ),
  )
}

export function hasBlocks(client: BlockServiceClient, cids: CID[]): Promise<boolean[]> {
  return new Promise((resolve, reject) =>
    client.hasBlocks(
      { cids: cids.map((c) => Buffer.from(c.bytes)) },
      new Metadata(),
      deadline(),
      (err, res) => (err ? reject(err) : resolve(res.has)),
    ),
  )
}

/** A node's own view of the membership (GetMembership), or undefined when it does not answer. */
export async function membershipOf(address: string, timeoutMs = 3_000): Promise<Member[] | undefined> {
  const client = new MembershipServiceClient(address, credentials.createInsecure())
  try {
    return await new Promise((resolve) =>
      client.getMembership({}, new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err, res) =>
        resolve(err ? undefined : membersFromRecords(res.members)),
      ),
    )
  } finally {
    client.close()
  }
}
