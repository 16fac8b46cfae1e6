import { readFile } from 'node:fs/promises'
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js'
import {
  type AddRequest,
  type AddResponse,
  ApiServiceClient,
  mycelCodeOf,
  RemoteMycelError,
} from '@mycel/proto'

/** The generated ApiService client, plaintext, with limits above the server's (to test them). */
export function apiClient(address: string): ApiServiceClient {
  return new ApiServiceClient(address, credentials.createInsecure(), {
    'grpc.max_send_message_length': 16 * 1024 * 1024,
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
  })
}

export function bearer(token: string | undefined): Metadata {
  const md = new Metadata()
  if (token !== undefined) md.set('authorization', `Bearer ${token}`)
  return md
}

/** The gRPC status and Mycel code an operation failed with (it must fail). */
export async function failure(
  p: Promise<unknown>,
): Promise<{ code: number; mycel: string | undefined; details: string }> {
  try {
    await p
  } catch (err) {
    if (err instanceof RemoteMycelError) return { code: err.grpcCode, mycel: err.code, details: err.message }
    const e = err as ServiceError
    return { code: e.code, mycel: mycelCodeOf(err), details: e.details ?? e.message }
  }
  throw new Error('expected the call to fail')
}

/** Sends Add messages on the generated client and resolves with the response (or rejects). */
export function rawAdd(
  client: ApiServiceClient,
  messages: AddRequest[],
  opts: { metadata?: Metadata; deadlineMs?: number; end?: boolean } = {},
): Promise<AddResponse> {
  return new Promise((resolve, reject) => {
    const call = client.add(
      opts.metadata ?? new Metadata(),
      opts.deadlineMs === undefined ? {} : { deadline: new Date(Date.now() + opts.deadlineMs) },
      (err, res) => (err ? reject(err) : resolve(res)),
    )
    for (const m of messages) call.write(m)
    if (opts.end ?? true) call.end()
  })
}

export const options = (
  value: Partial<NonNullable<Extract<AddRequest['message'], { $case: 'options' }>>['value']> = {},
): AddRequest => ({
  message: {
    $case: 'options',
    value: {
      durability: '',
      filename: '',
      chunker: '',
      wrapWithDirectory: false,
      directory: false,
      pinName: '',
      ...value,
    },
  },
})

export const data = (bytes: Uint8Array): AddRequest => ({
  message: { $case: 'data', value: Buffer.from(bytes) },
})

/** Peak resident memory (VmHWM) of a process, in bytes. */
export async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const m = /VmHWM:\s+(\d+) kB/.exec(status)
  if (m === null) throw new Error(`no VmHWM for ${pid}`)
  return Number(m[1]) * 1024
}
