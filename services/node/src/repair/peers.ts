import { Metadata } from '@grpc/grpc-js'
import { deadlineIn, type NodeClients, WriteSession } from '@mycel/cluster'
import type { CID, DurabilityPolicy, Logger, Member } from '@mycel/core'
import { fromProtoDurability } from '@mycel/proto'
import type { TargetAnswer } from './decide.js'

/** One stream of copies to one peer. */
export interface PushStream {
  /** Resolves when the peer has the block durably; rejects when it refused or failed. */
  put(cid: CID, bytes: Uint8Array, policy: DurabilityPolicy): Promise<void>
  close(): Promise<void>
}

/** What repair and scrub need from the other nodes. Batched: one call covers many blocks. */
export interface RepairPeers {
  /** For each CID, whether `member` holds it and with which record. */
  has(member: Member, cids: readonly CID[]): Promise<TargetAnswer[]>
  /** Opens a stream of copies to `member`. */
  push(member: Member): PushStream
  /** A copy from `member` (unverified: the caller verifies) with its record. */
  get(member: Member, cid: CID): Promise<{ data: Uint8Array; policy?: DurabilityPolicy }>
}

/** Peers over the nodes' BlockService (HasBlocks, PutBlocks, GetBlock), with per-call deadlines. */
export class GrpcRepairPeers implements RepairPeers {
  constructor(
    private readonly clients: NodeClients,
    private readonly rpcTimeoutMs: number,
    private readonly logger: Logger,
  ) {}

  has(member: Member, cids: readonly CID[]): Promise<TargetAnswer[]> {
    return new Promise((resolve, reject) =>
      this.clients
        .clientFor(member.address)
        .hasBlocks(
          { cids: cids.map((c) => Buffer.from(c.bytes)) },
          new Metadata(),
          { deadline: deadlineIn(this.rpcTimeoutMs) },
          (err, res) => {
            if (err) return reject(err)
            if (res.has.length !== cids.length) {
              return reject(new Error(`${member.address} answered ${res.has.length} of ${cids.length}`))
            }
            resolve(
              res.has.map((held, i) => {
                const policy = fromProtoDurability(res.durability[i])
                return policy === undefined ? { held } : { held, policy }
              }),
            )
          },
        ),
    )
  }

  push(member: Member): PushStream {
    // A write session to this one node: its stream, backpressure and per-block ack deadlines.
    const session = new WriteSession({
      nodes: [
        {
          ...member,
          client: this.clients.clientFor(member.address),
          shards: this.clients.shardClientFor(member.address),
        },
      ],
      replication: 1,
      writeQuorum: 1,
      ackTimeoutMs: this.rpcTimeoutMs,
      maxInflightPerNode: 8,
      logger: this.logger,
    })
    return {
      put: (cid, bytes, policy) => session.put(cid, bytes, policy),
      close: () => session.close(),
    }
  }

  get(member: Member, cid: CID): Promise<{ data: Uint8Array; policy?: DurabilityPolicy }> {
    return new Promise((resolve, reject) =>
      this.clients
        .clientFor(member.address)
        .getBlock(
          { cid: Buffer.from(cid.bytes), acceptShard: false, shardIndex: 0 },
          new Metadata(),
          { deadline: deadlineIn(this.rpcTimeoutMs) },
          (err, res) => {
            if (err) return reject(err)
            const policy = fromProtoDurability(res.durability)
            resolve(policy === undefined ? { data: res.data } : { data: res.data, policy })
          },
        ),
    )
  }
}
