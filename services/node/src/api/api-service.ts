import {
  Metadata,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
} from '@grpc/grpc-js'
import {
  type ClusterBlockstore,
  checkDagPresence,
  deadlineIn,
  formatContentPath,
  importToCluster,
  type NodeClients,
  parseContentPath,
  resolvePath,
  topLevelRoots,
} from '@mycel/cluster'
import {
  type CID,
  decodeCid,
  InvalidArgumentError,
  importParams,
  isRoutable,
  type Logger,
  type MembershipView,
  type NodeEnv,
  NotAFileError,
  parseCid,
  parseDurabilityOption,
  RangeNotSatisfiableError,
  type Scope,
  type TokenAuthenticator,
} from '@mycel/core'
import {
  type AddRequest,
  type AddResponse,
  type ApiServiceServer,
  type CatRequest,
  type CatResponse,
  type ClusterStatusRequest,
  type ClusterStatusResponse,
  type DirectoryEntry,
  EntryType,
  type ListPinsRequest,
  type ListPinsResponse,
  type ListRequest,
  type ListResponse,
  type MemberStatus,
  type PinInfo,
  type PinRecord,
  type PinRequest,
  type PinResponse,
  type StatRequest,
  type StatResponse,
  type UnpinRequest,
  type UnpinResponse,
} from '@mycel/proto'
import type { NodeMetrics } from '../admin/metrics.js'
import type { Pins } from '../pins/pins.js'
import { AddStream } from './add-stream.js'
import { entryFacts } from './entry-type.js'
import { answer, stream } from './grpc-calls.js'

export interface ApiServiceComponents {
  config: NodeEnv
  nodeId: string
  cluster: ClusterBlockstore
  clients: NodeClients
  membership: MembershipView
  pins: Pins
  /** Undefined: no authentication (no MYCEL_API_TOKENS_FILE). */
  auth: TokenAuthenticator | undefined
  logger: Logger
  metrics: NodeMetrics
}

/** Entries listed in an AddResponse at most (the root is always last). */
const MAX_REPORTED_ENTRIES = 10_000
/** Directory entries per List message, and the blocks classified at once. */
const LIST_BATCH = 64
/** Pins per ListPins message. */
const PINS_PER_MESSAGE = 1_000
/** How long ClusterStatus waits for each member's stats. */
const STATS_TIMEOUT_MS = 2_000

/** The public ApiService (proto/mycel/v1/api.proto), coordinated by this node over the cluster. */
export function createApiService(c: ApiServiceComponents): ApiServiceServer {
  const log = c.logger.child({ component: 'node:api' })
  const deps = { log, metrics: c.metrics }
  const authorize = (metadata: Metadata, scope: Scope) => {
    if (c.auth === undefined) return
    const header = metadata.get('authorization')[0]
    c.auth.authorize(header === undefined ? undefined : String(header), scope)
  }
  const maxReplication = () => c.cluster.nodes.length

  return {
    add(call: ServerReadableStream<AddRequest, AddResponse>, callback: sendUnaryData<AddResponse>) {
      answer('Api.Add', call, callback, deps, async (signal) => {
        authorize(call.metadata, 'write')
        const messages = (call as AsyncIterable<AddRequest>)[Symbol.asyncIterator]()
        const first = await messages.next()
        const head = first.done ? undefined : first.value.message
        if (head?.$case !== 'options') {
          throw new InvalidArgumentError('Add: the first message must carry the options')
        }
        const o = head.value
        const params = importParams({
          cidVersion: o.cidVersion,
          rawLeaves: o.rawLeaves,
          chunker: o.chunker,
          wrapWithDirectory: o.wrapWithDirectory,
        })
        if (!o.directory && o.wrapWithDirectory && o.filename === '') {
          throw new InvalidArgumentError('Add: wrap_with_directory in file mode needs a filename')
        }
        const durability = parseDurabilityOption(o.durability, maxReplication())
        const pin = o.pin ?? true
        const input = new AddStream(messages, c.config.MYCEL_MAX_UPLOAD_BYTES)
        const entries = await importToCluster(
          c.cluster,
          o.directory ? input.directoryCandidates() : input.fileCandidates(o.filename),
          { params, durability, signal, logger: log },
        )
        const root = entries.at(-1)
        if (root === undefined) throw new Error('importer returned no entry')
        // Kubo pins what it reports as added at the top: the wrapper, the file, or each top entry.
        const roots = topLevelRoots(entries, params.wrapWithDirectory || !o.directory)
        if (pin) await c.pins.pinWritten(roots, { durability: o.durability, name: o.pinName, signal })
        return {
          cid: root.cid.toString(),
          size: BigInt(input.received),
          dagSize: root.size,
          entries: entries
            .slice(-MAX_REPORTED_ENTRIES)
            .map((e) => ({ path: e.path, cid: e.cid.toString(), dagSize: e.size })),
          entriesTruncated: entries.length > MAX_REPORTED_ENTRIES,
          pinned: pin ? roots.map((r) => r.toString()) : [],
        }
      })
    },

    cat(call: ServerWritableStream<CatRequest, CatResponse>) {
      stream('Api.Cat', call, deps, async (send, signal) => {
        authorize(call.metadata, 'read')
        const path = parseContentPath(call.request.path)
        const entry = await resolvePath(c.cluster, path, signal)
        if (entry.type !== 'file' && entry.type !== 'raw' && entry.type !== 'identity') {
          throw new NotAFileError(`${formatContentPath(path)} is a ${entry.type}; Cat reads files`)
        }
        if (entry.type === 'file' && entry.unixfs.type === 'symlink') {
          throw new NotAFileError(`${formatContentPath(path)} is a symlink; Cat reads files`)
        }
        const fileSize = entry.size
        const offset = call.request.offset
        if (offset > fileSize) {
          throw new RangeNotSatisfiableError(Number(fileSize), `offset ${offset}`)
        }
        const rest = fileSize - offset
        const length =
          call.request.length === undefined || call.request.length > rest ? rest : call.request.length
        if (length === 0n) {
          await send({ offset, data: Buffer.alloc(0), fileSize })
          return
        }
        let at = offset
        for await (const data of entry.content({
          offset: Number(offset),
          length: Number(length),
          signal,
          blockReadConcurrency: 8,
        })) {
          await send({
            offset: at,
            data: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
            fileSize,
          })
          at += BigInt(data.byteLength)
        }
      })
    },

    stat(call: ServerUnaryCall<StatRequest, StatResponse>, callback: sendUnaryData<StatResponse>) {
      answer('Api.Stat', call, callback, deps, async (signal) => {
        authorize(call.metadata, 'read')
        const cid = await resolveCid(c.cluster, call.request.path, signal)
        const bytes = await c.cluster.getBlock(cid, { signal })
        const facts = entryFacts(cid, bytes)
        const res: StatResponse = {
          cid: cid.toString(),
          type: facts.type,
          size: BigInt(facts.size),
          dagSize: BigInt(facts.dagSize),
          blockSize: BigInt(bytes.byteLength),
          links: facts.links,
        }
        if (call.request.countBlocks) {
          res.blocks = BigInt((await checkDagPresence(c.cluster, cid, { signal })).blocks)
        }
        return res
      })
    },

    list(call: ServerWritableStream<ListRequest, ListResponse>) {
      stream('Api.List', call, deps, async (send, signal) => {
        authorize(call.metadata, 'read')
        const path = parseContentPath(call.request.path)
        const entry = await resolvePath(c.cluster, path, signal)
        if (entry.type !== 'directory') {
          throw new NotAFileError(`${formatContentPath(path)} is not a directory; List reads directories`)
        }
        let batch: Array<{ name: string; cid: CID; size: bigint }> = []
        const flush = async () => {
          const entries: DirectoryEntry[] = await Promise.all(
            batch.map(async (e) => {
              const facts = entryFacts(e.cid, await c.cluster.getBlock(e.cid, { signal }))
              // A directory's size is its cumulative DAG size (the link's Tsize), as Kubo lists it.
              const size = facts.type === EntryType.ENTRY_TYPE_DIRECTORY ? e.size : BigInt(facts.size)
              return { name: e.name, cid: e.cid.toString(), type: facts.type, size }
            }),
          )
          batch = []
          await send({ entries })
        }
        for await (const child of entry.entries({ signal })) {
          batch.push({ name: child.name, cid: child.cid as unknown as CID, size: child.size })
          if (batch.length >= LIST_BATCH) await flush()
        }
        if (batch.length > 0) await flush()
      })
    },

    pin(call: ServerUnaryCall<PinRequest, PinResponse>, callback: sendUnaryData<PinResponse>) {
      answer('Api.Pin', call, callback, deps, async (signal) => {
        authorize(call.metadata, 'write')
        const cid = parseCid(call.request.cid)
        const { blocks } = await c.pins.pin(cid, {
          durability: call.request.durability,
          name: call.request.name,
          signal,
        })
        return { cid: cid.toString(), blocks: BigInt(blocks) }
      })
    },

    unpin(call: ServerUnaryCall<UnpinRequest, UnpinResponse>, callback: sendUnaryData<UnpinResponse>) {
      answer('Api.Unpin', call, callback, deps, async (signal) => {
        authorize(call.metadata, 'write')
        const cid = parseCid(call.request.cid)
        await c.pins.unpin(cid, signal)
        return { cid: cid.toString() }
      })
    },

    listPins(call: ServerWritableStream<ListPinsRequest, ListPinsResponse>) {
      stream('Api.ListPins', call, deps, async (send, signal) => {
        authorize(call.metadata, 'read')
        const cids = call.request.cids.map(parseCid)
        const records = await c.pins.list(cids, signal)
        for (let i = 0; i < records.length || i === 0; i += PINS_PER_MESSAGE) {
          await send({ pins: records.slice(i, i + PINS_PER_MESSAGE).map(pinInfo) })
        }
      })
    },

    clusterStatus(
      call: ServerUnaryCall<ClusterStatusRequest, ClusterStatusResponse>,
      callback: sendUnaryData<ClusterStatusResponse>,
    ) {
      answer('Api.ClusterStatus', call, callback, deps, async () => {
        authorize(call.metadata, 'admin')
        const members = await Promise.all(c.membership.members().map((m) => memberStatus(c.clients, m)))
        const up = members.filter((m) => m.reachable).length
        return {
          members,
          membersUp: up,
          membersTotal: members.length,
          replication: Math.min(c.config.MYCEL_REPLICATION, c.cluster.nodes.length),
          writeQuorum: c.config.MYCEL_WRITE_QUORUM,
          ready: up >= Math.min(c.config.MYCEL_WRITE_QUORUM, c.cluster.nodes.length),
          coordinator: c.nodeId,
          pins: BigInt(c.pins.localCount),
        }
      })
    },
  }
}

async function resolveCid(cluster: ClusterBlockstore, text: string, signal: AbortSignal): Promise<CID> {
  const path = parseContentPath(text)
  if (path.segments.length === 0) return path.root
  return (await resolvePath(cluster, path, signal)).cid as unknown as CID
}

function pinInfo(r: PinRecord): PinInfo {
  return {
    cid: decodeCid(r.cid).toString(),
    durability: r.durability,
    name: r.name,
    updatedAtMs: r.timestamp,
  }
}

function memberStatus(
  clients: NodeClients,
  m: ReturnType<MembershipView['members']>[number],
): Promise<MemberStatus> {
  const base: MemberStatus = {
    nodeId: m.id,
    address: m.address,
    zone: m.zone,
    state: m.state,
    reachable: false,
    blocks: 0n,
    blockBytes: 0n,
    capacityBytes: 0n,
    version: '',
    error: '',
  }
  if (!isRoutable(m)) return Promise.resolve({ ...base, error: `member is ${m.state}` })
  return new Promise((resolve) => {
    clients
      .clientFor(m.address)
      .getNodeStats({}, new Metadata(), { deadline: deadlineIn(STATS_TIMEOUT_MS) }, (err, res) => {
        if (err) {
          resolve({ ...base, error: err.details || err.message })
          return
        }
        resolve({
          ...base,
          nodeId: res.nodeId,
          zone: res.zone,
          reachable: true,
          blocks: res.blocks,
          blockBytes: res.blockBytes,
          capacityBytes: res.capacityBytes,
          version: res.version,
        })
      })
  })
}
