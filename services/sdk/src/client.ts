import { once } from 'node:events'
import { Readable } from 'node:stream'
import {
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientReadableStream,
  credentials,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js'
import { MAX_GRPC_MESSAGE_BYTES } from '@mycel/core'
import {
  type AddRequest,
  type AddResponse,
  ApiServiceClient,
  type ClusterStatusResponse,
  EntryType,
  mycelCodeOf,
  RemoteMycelError,
  remoteErrorOf,
  type StatResponse,
} from '@mycel/proto'

export interface MycelClientOptions {
  /** Node gRPC addresses (`host:port`), or one comma-separated string. Tried in order. */
  nodes: string | readonly string[]
  /** Bearer token for nodes that require one (MYCEL_API_TOKENS_FILE). */
  token?: string | undefined
  /** TLS: true trusts the system CAs; `ca` trusts that PEM bundle instead. Default plaintext. */
  tls?: boolean | { ca?: string | Uint8Array | undefined; serverName?: string | undefined } | undefined
  /**
   * Channel credentials and options to use instead of `tls` (e.g. a cluster process's mutual TLS
   * credentials, which follow certificate rotation).
   */
  channel?: { credentials: ChannelCredentials; options?: ChannelOptions | undefined } | undefined
  /** Deadline of unary calls (stat, pins, status), default 30 s. Streams have none by default. */
  timeoutMs?: number | undefined
  /** How long to wait for a node to accept a connection before trying the next, default 5 s. */
  connectTimeoutMs?: number | undefined
}

export interface CallOpts {
  signal?: AbortSignal | undefined
  /** Deadline of the whole operation, failovers included (ms). */
  timeoutMs?: number | undefined
}

/** Bytes to add: a buffer (can be re-sent to another node) or a stream (sent once). */
export type AddSource = Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>

export interface AddOptions extends CallOpts {
  /** `replicate:R` or `ec:K+M`; default the cluster's. */
  durability?: string | undefined
  /** Pin the added root(s); default true. */
  pin?: boolean | undefined
  pinName?: string | undefined
  filename?: string | undefined
  cidVersion?: 0 | 1 | undefined
  rawLeaves?: boolean | undefined
  /** `size-N`. */
  chunker?: string | undefined
  wrapWithDirectory?: boolean | undefined
  /** Called with the file bytes sent so far. */
  onProgress?: ((bytes: number) => void) | undefined
}

/** One entry of a directory add. `content` absent: a directory. */
export interface AddEntryInput {
  path: string
  content?: AddSource | undefined
}

export interface AddResult {
  cid: string
  /** File bytes sent. */
  size: number
  /** Cumulative DAG size of the root (Kubo's Size). */
  dagSize: number
  entries: Array<{ path: string; cid: string; dagSize: number }>
  pinned: string[]
}

export type EntryKind = 'file' | 'directory' | 'raw' | 'symlink' | 'object' | 'identity' | 'unknown'

export interface StatResult {
  cid: string
  type: EntryKind
  size: number
  dagSize: number
  blockSize: number
  links: number
  blocks?: number | undefined
}

export interface ListEntry {
  name: string
  cid: string
  type: EntryKind
  size: number
}

export interface PinInfo {
  cid: string
  durability: string
  name: string
  updatedAt: Date
}

export interface MemberInfo {
  nodeId: string
  address: string
  zone: string
  state: string
  reachable: boolean
  blocks: number
  blockBytes: number
  capacityBytes: number
  version: string
  error: string
}

export interface ClusterStatus {
  members: MemberInfo[]
  membersUp: number
  membersTotal: number
  replication: number
  writeQuorum: number
  ready: boolean
  coordinator: string
  pins: number
  /** The node that answered. */
  answeredBy: string
}

/** Largest data message sent (the server accepts up to 4 MiB). */
const MAX_CHUNK_BYTES = 1024 * 1024
/** How long a node that failed is tried only after the others. */
const DOWN_MS = 10_000

const KIND: Record<EntryType, EntryKind> = {
  [EntryType.ENTRY_TYPE_UNSPECIFIED]: 'unknown',
  [EntryType.ENTRY_TYPE_FILE]: 'file',
  [EntryType.ENTRY_TYPE_DIRECTORY]: 'directory',
  [EntryType.ENTRY_TYPE_RAW]: 'raw',
  [EntryType.ENTRY_TYPE_SYMLINK]: 'symlink',
  [EntryType.ENTRY_TYPE_OBJECT]: 'object',
  [EntryType.ENTRY_TYPE_IDENTITY]: 'identity',
  [EntryType.UNRECOGNIZED]: 'unknown',
}

interface Node {
  address: string
  client: ApiServiceClient
  downUntil: number
}

/**
 * The node could not be reached or dropped the call: another node can do the same work.
 * (Errors a node answered with, such as NOT_FOUND or a quorum failure, carry a Mycel code and are
 * the cluster's answer, not the node's failure.)
 */
export function isNodeFailure(err: unknown): boolean {
  const e = err as Partial<ServiceError>
  if (typeof e?.code !== 'number' || mycelCodeOf(err) !== undefined) return false
  if (e.code === status.UNAVAILABLE) return true
  // A connection cut mid-stream surfaces as INTERNAL (RST_STREAM) in some grpc-js paths.
  return (
    e.code === status.INTERNAL && /RST_STREAM|Connection dropped|ECONNRESET|socket/i.test(e.details ?? '')
  )
}

function kindOf(t: EntryType): EntryKind {
  return KIND[t] ?? 'unknown'
}

function parseNodes(nodes: string | readonly string[]): string[] {
  const list = (typeof nodes === 'string' ? nodes.split(',') : [...nodes])
    .map((s) => s.trim())
    .filter(Boolean)
  if (list.length === 0) throw new Error('MycelClient: at least one node address is required')
  return list
}

function channelCredentials(tls: MycelClientOptions['tls']): ChannelCredentials {
  if (tls === undefined || tls === false) return credentials.createInsecure()
  if (tls === true) return credentials.createSsl()
  const ca = tls.ca === undefined ? null : Buffer.from(tls.ca)
  return credentials.createSsl(ca)
}

/**
 * A client of Mycel's public gRPC API (proto/mycel/v1/api.proto) that talks to several nodes:
 * each operation goes to the first node that is up, and moves on when a node cannot be reached or
 * drops the call. Reads resume where they stopped (content is immutable and every node serves the
 * same verified bytes); an add is re-sent whole when its source is a buffer or a file, and fails
 * cleanly otherwise. An operation never returns partial or wrong data as if it were complete.
 */
export class MycelClient {
  private readonly nodes: Node[]
  private readonly token: string | undefined
  private readonly timeoutMs: number
  private readonly connectTimeoutMs: number

  constructor(options: MycelClientOptions) {
    const creds = options.channel?.credentials ?? channelCredentials(options.tls)
    const channelOptions: ChannelOptions = {
      'grpc.max_receive_message_length': MAX_GRPC_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_GRPC_MESSAGE_BYTES,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.initial_reconnect_backoff_ms': 250,
      'grpc.max_reconnect_backoff_ms': 5_000,
      'grpc-node.flow_control_window': 8 * 1024 * 1024,
    }
    if (typeof options.tls === 'object' && options.tls.serverName) {
      channelOptions['grpc.ssl_target_name_override'] = options.tls.serverName
      channelOptions['grpc.default_authority'] = options.tls.serverName
    }
    Object.assign(channelOptions, options.channel?.options)
    this.nodes = parseNodes(options.nodes).map((address) => ({
      address,
      client: new ApiServiceClient(address, creds, channelOptions),
      downUntil: 0,
    }))
    this.token = options.token
    this.timeoutMs = options.timeoutMs ?? 30_000
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5_000
  }

  /** The node addresses, in the order they are tried now. */
  get addresses(): string[] {
    return this.order().map((n) => n.address)
  }

  close(): void {
    for (const n of this.nodes) n.client.close()
  }

  /**
   * Adds one file's bytes. A buffer, or a function that opens the source anew (a file), can be
   * re-sent to another node when the first fails; a stream is sent once.
   */
  add(source: AddSource | (() => AddSource), opts: AddOptions = {}): Promise<AddResult> {
    const open = typeof source === 'function' ? source : () => source
    const replay = typeof source === 'function' || source instanceof Uint8Array
    return this.addMessages(() => fileMessages(open(), opts), replay, opts)
  }

  /**
   * Adds a directory tree: one entry per file or directory, with '/'-separated relative paths
   * ("dir/a.txt"), as `ipfs add -r` does, giving the same CIDs. `entries` is called again for
   * another node when `replayable` (e.g. it walks the file system), else the add is not retried
   * once its bytes are being sent.
   */
  addEntries(
    entries: () => AsyncIterable<AddEntryInput> | Iterable<AddEntryInput>,
    opts: AddOptions & { replayable?: boolean } = {},
  ): Promise<AddResult> {
    return this.addMessages(() => entryMessages(entries(), opts), opts.replayable ?? false, opts)
  }

  /**
   * The bytes of a file from `offset`, at most `length`. When a node fails mid-stream, the read
   * resumes at the next byte on another node; a stream that ends short is an error.
   */
  async *cat(
    path: string,
    opts: CallOpts & { offset?: number | undefined; length?: number | undefined } = {},
  ): AsyncGenerator<Uint8Array> {
    const start = opts.offset ?? 0
    let pos = start
    let end: number | undefined = opts.length === undefined ? undefined : start + opts.length
    const deadline = this.deadline(opts, false)
    const failures: string[] = []
    for (;;) {
      const node = this.pick(failures.length)
      if (node === undefined) throw this.exhausted(failures)
      const request = {
        path,
        offset: BigInt(pos),
        length: end === undefined ? undefined : BigInt(Math.max(0, end - pos)),
      }
      const call = node.client.cat(request, this.metadata(), this.callOptions(deadline))
      const stop = this.cancelOn(call, opts.signal)
      try {
        for await (const msg of call as AsyncIterable<{
          offset: bigint
          data: Uint8Array
          fileSize: bigint
        }>) {
          const size = Number(msg.fileSize)
          end = end === undefined ? size : Math.min(end, size)
          if (Number(msg.offset) !== pos) {
            throw new RemoteMycelError(
              'INVALID_ARGUMENT',
              `${node.address} sent bytes at offset ${msg.offset}, expected ${pos}`,
              status.INTERNAL,
            )
          }
          if (msg.data.byteLength > 0) {
            pos += msg.data.byteLength
            yield msg.data
          }
        }
        if (end !== undefined && pos < end) {
          throw Object.assign(new Error(`${node.address} ended the stream at byte ${pos} of ${end}`), {
            code: status.UNAVAILABLE,
            details: 'stream ended early',
          })
        }
        return
      } catch (err) {
        this.failOver(node, err, failures, opts.signal)
      } finally {
        stop()
      }
    }
  }

  /** `cat` as a Readable stream (backpressure from the reader reaches the node). */
  catStream(
    path: string,
    opts: CallOpts & { offset?: number | undefined; length?: number | undefined } = {},
  ): Readable {
    return Readable.from(this.cat(path, opts), { objectMode: false })
  }

  async stat(path: string, opts: CallOpts & { countBlocks?: boolean } = {}): Promise<StatResult> {
    const res = await this.unary<StatResponse>(opts, (c, md, o, cb) =>
      c.stat({ path, countBlocks: opts.countBlocks ?? false }, md, o, cb),
    )
    return {
      cid: res.cid,
      type: kindOf(res.type),
      size: Number(res.size),
      dagSize: Number(res.dagSize),
      blockSize: Number(res.blockSize),
      links: res.links,
      blocks: res.blocks === undefined ? undefined : Number(res.blocks),
    }
  }

  /** The entries of a directory. */
  async ls(path: string, opts: CallOpts = {}): Promise<ListEntry[]> {
    const messages = await this.collect<{
      entries: Array<{ name: string; cid: string; type: EntryType; size: bigint }>
    }>(opts, (c, md, o) => c.list({ path }, md, o))
    return messages.flatMap((m) =>
      m.entries.map((e) => ({ name: e.name, cid: e.cid, type: kindOf(e.type), size: Number(e.size) })),
    )
  }

  async pin(
    cid: string,
    opts: CallOpts & { durability?: string | undefined; name?: string | undefined } = {},
  ): Promise<{ cid: string; blocks: number }> {
    const res = await this.unary<{ cid: string; blocks: bigint }>(opts, (c, md, o, cb) =>
      c.pin({ cid, durability: opts.durability ?? '', name: opts.name ?? '' }, md, o, cb),
    )
    return { cid: res.cid, blocks: Number(res.blocks) }
  }

  async unpin(cid: string, opts: CallOpts = {}): Promise<{ cid: string }> {
    return this.unary<{ cid: string }>(opts, (c, md, o, cb) => c.unpin({ cid }, md, o, cb))
  }

  /** Every pin, or those of `cids` (NOT_FOUND if one is not pinned). */
  async listPins(opts: CallOpts & { cids?: readonly string[] | undefined } = {}): Promise<PinInfo[]> {
    const messages = await this.collect<{
      pins: Array<{ cid: string; durability: string; name: string; updatedAtMs: bigint }>
    }>(opts, (c, md, o) => c.listPins({ cids: [...(opts.cids ?? [])] }, md, o))
    return messages.flatMap((m) =>
      m.pins.map((p) => ({
        cid: p.cid,
        durability: p.durability,
        name: p.name,
        updatedAt: new Date(Number(p.updatedAtMs)),
      })),
    )
  }

  async status(opts: CallOpts = {}): Promise<ClusterStatus> {
    let answeredBy = ''
    const res = await this.unary<ClusterStatusResponse>(
      opts,
      (c, md, o, cb) => c.clusterStatus({}, md, o, cb),
      (node) => {
        answeredBy = node.address
      },
    )
    return {
      members: res.members.map((m) => ({
        ...m,
        blocks: Number(m.blocks),
        blockBytes: Number(m.blockBytes),
        capacityBytes: Number(m.capacityBytes),
      })),
      membersUp: res.membersUp,
      membersTotal: res.membersTotal,
      replication: res.replication,
      writeQuorum: res.writeQuorum,
      ready: res.ready,
      coordinator: res.coordinator,
      pins: Number(res.pins),
      answeredBy,
    }
  }

  // ---------------------------------------------------------------------------------------------

  private async addMessages(
    messages: () => AsyncIterable<AddRequest>,
    replayable: boolean,
    opts: AddOptions,
  ): Promise<AddResult> {
    const deadline = this.deadline(opts, false)
    const failures: string[] = []
    for (;;) {
      const node = this.pick(failures.length)
      if (node === undefined) throw this.exhausted(failures)
      // Connect first: a node that is down is skipped before any byte of a one-shot stream is read.
      if (!(await this.ready(node))) {
        this.markDown(node)
        failures.push(`${node.address}: not reachable`)
        continue
      }
      let started = false
      try {
        const res = await this.addOn(node, messages(), deadline, opts, () => {
          started = true
        })
        return {
          cid: res.cid,
          size: Number(res.size),
          dagSize: Number(res.dagSize),
          entries: res.entries.map((e) => ({ path: e.path, cid: e.cid, dagSize: Number(e.dagSize) })),
          pinned: res.pinned,
        }
      } catch (err) {
        if (started && !replayable) throw remoteErrorOf(err)
        this.failOver(node, err, failures, opts.signal)
      }
    }
  }

  private addOn(
    node: Node,
    messages: AsyncIterable<AddRequest>,
    deadline: Date | undefined,
    opts: AddOptions,
    onData: () => void,
  ): Promise<AddResponse> {
    return new Promise<AddResponse>((resolve, reject) => {
      let settled = false
      const call = node.client.add(this.metadata(), this.callOptions(deadline), (err, res) => {
        settled = true
        stop()
        if (err) reject(err)
        else resolve(res)
      })
      const stop = this.cancelOn(call, opts.signal)
      const answered = new Promise<void>((r) => call.once('status', () => r()))
      void (async () => {
        let sent = 0
        try {
          for await (const msg of messages) {
            if (settled) return
            if (msg.message?.$case === 'data') {
              onData()
              sent += msg.message.value.byteLength
            }
            // Flow control: wait while the transport holds what it can (or the call ends).
            if (!call.write(msg)) await Promise.race([once(call, 'drain'), answered])
            if (msg.message?.$case === 'data') opts.onProgress?.(sent)
          }
          if (!settled) call.end()
        } catch (err) {
          // The source failed (e.g. a file could not be read): cancel, and report that error.
          settled = true
          stop()
          call.cancel()
          reject(err)
        }
      })()
    })
  }

  private async unary<Res>(
    opts: CallOpts,
    invoke: (
      client: ApiServiceClient,
      md: Metadata,
      options: Partial<CallOptions>,
      cb: (err: ServiceError | null, res: Res) => void,
    ) => { cancel(): void },
    onAnswer?: (node: Node) => void,
  ): Promise<Res> {
    const deadline = this.deadline(opts, true)
    const failures: string[] = []
    for (;;) {
      const node = this.pick(failures.length)
      if (node === undefined) throw this.exhausted(failures)
      try {
        const res = await new Promise<Res>((resolve, reject) => {
          const call = invoke(node.client, this.metadata(), this.callOptions(deadline), (err, r) => {
            stop()
            if (err) reject(err)
            else resolve(r)
          })
          const stop = this.cancelOn(call, opts.signal)
        })
        onAnswer?.(node)
        return res
      } catch (err) {
        this.failOver(node, err, failures, opts.signal)
      }
    }
  }

  /** A server stream read whole; a node that fails before it finishes is replaced by the next. */
  private async collect<Msg>(
    opts: CallOpts,
    invoke: (
      client: ApiServiceClient,
      md: Metadata,
      options: Partial<CallOptions>,
    ) => ClientReadableStream<Msg>,
  ): Promise<Msg[]> {
    const deadline = this.deadline(opts, true)
    const failures: string[] = []
    for (;;) {
      const node = this.pick(failures.length)
      if (node === undefined) throw this.exhausted(failures)
      const call = invoke(node.client, this.metadata(), this.callOptions(deadline))
      const stop = this.cancelOn(call, opts.signal)
      try {
        const out: Msg[] = []
        for await (const msg of call as AsyncIterable<Msg>) out.push(msg)
        return out
      } catch (err) {
        this.failOver(node, err, failures, opts.signal)
      } finally {
        stop()
      }
    }
  }

  /** Nodes not known to be down first, in configured order; then the rest. */
  private order(): Node[] {
    const now = Date.now()
    return [...this.nodes.filter((n) => n.downUntil <= now), ...this.nodes.filter((n) => n.downUntil > now)]
  }

  /** The node for the attempt after `failed` failures (each node is tried once per operation). */
  private pick(failed: number): Node | undefined {
    return failed < this.nodes.length ? this.order()[0] : undefined
  }

  private markDown(node: Node): void {
    node.downUntil = Date.now() + DOWN_MS
  }

  /** After an attempt failed: rethrows unless the node failed (then the next node is tried). */
  private failOver(node: Node, err: unknown, failures: string[], signal: AbortSignal | undefined): void {
    if (!isNodeFailure(err) || signal?.aborted) throw remoteErrorOf(err)
    this.markDown(node)
    failures.push(`${node.address}: ${(err as ServiceError).details || (err as Error).message}`)
  }

  private exhausted(failures: string[]): RemoteMycelError {
    return new RemoteMycelError(
      'UPSTREAM_UNAVAILABLE',
      `no Mycel node could be reached: ${failures.join('; ')}`,
      status.UNAVAILABLE,
    )
  }

  private ready(node: Node): Promise<boolean> {
    return new Promise((resolve) =>
      node.client.waitForReady(new Date(Date.now() + this.connectTimeoutMs), (err) => resolve(!err)),
    )
  }

  private deadline(opts: CallOpts, unary: boolean): Date | undefined {
    const ms = opts.timeoutMs ?? (unary ? this.timeoutMs : undefined)
    return ms === undefined ? undefined : new Date(Date.now() + ms)
  }

  private callOptions(deadline: Date | undefined): Partial<CallOptions> {
    return deadline === undefined ? {} : { deadline }
  }

  private metadata(): Metadata {
    const md = new Metadata()
    if (this.token !== undefined) md.set('authorization', `Bearer ${this.token}`)
    return md
  }

  private cancelOn(call: { cancel(): void }, signal: AbortSignal | undefined): () => void {
    if (signal === undefined) return () => {}
    const onAbort = () => call.cancel()
    if (signal.aborted) onAbort()
    signal.addEventListener('abort', onAbort, { once: true })
    return () => signal.removeEventListener('abort', onAbort)
  }
}

function optionsMessage(opts: AddOptions, directory: boolean): AddRequest {
  return {
    message: {
      $case: 'options',
      value: {
        durability: opts.durability ?? '',
        pin: opts.pin,
        filename: opts.filename ?? '',
        cidVersion: opts.cidVersion,
        rawLeaves: opts.rawLeaves,
        chunker: opts.chunker ?? '',
        wrapWithDirectory: opts.wrapWithDirectory ?? false,
        directory,
        pinName: opts.pinName ?? '',
      },
    },
  }
}

/** Data messages of at most MAX_CHUNK_BYTES each. */
async function* dataMessages(source: AddSource): AsyncGenerator<AddRequest> {
  const chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array> =
    source instanceof Uint8Array ? [source] : source
  for await (const chunk of chunks) {
    for (let at = 0; at < chunk.byteLength; at += MAX_CHUNK_BYTES) {
      const piece = chunk.subarray(at, at + MAX_CHUNK_BYTES)
      yield {
        message: { $case: 'data', value: Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength) },
      }
    }
  }
}

async function* fileMessages(source: AddSource, opts: AddOptions): AsyncGenerator<AddRequest> {
  yield optionsMessage(opts, false)
  yield* dataMessages(source)
}

async function* entryMessages(
  entries: AsyncIterable<AddEntryInput> | Iterable<AddEntryInput>,
  opts: AddOptions,
): AsyncGenerator<AddRequest> {
  yield optionsMessage(opts, true)
  for await (const e of entries) {
    const type = e.content === undefined ? EntryType.ENTRY_TYPE_DIRECTORY : EntryType.ENTRY_TYPE_FILE
    yield { message: { $case: 'entry', value: { path: e.path, type } } }
    if (e.content !== undefined) yield* dataMessages(e.content)
  }
}
