import { Metadata, type ServiceError, status } from '@grpc/grpc-js'
import {
  BlockCorruptError,
  BlockNotFoundError,
  BlockTooLargeError,
  HashMismatchError,
  InvalidArgumentError,
  InvalidCidError,
  isMycelError,
  MycelError,
  type MycelErrorCode,
  StoreUnavailableError,
  UpstreamTimeoutError,
  UpstreamUnavailableError,
} from '@mycel/core'

/**
 * The one table from Mycel error codes to HTTP and gRPC statuses. The gRPC handlers, the
 * gateway's error filter and the gRPC client decoder all read it, so a condition maps the same
 * way on every surface.
 */
export const ERROR_MAP = {
  INVALID_CID: { http: 400, grpc: status.INVALID_ARGUMENT },
  INVALID_ARGUMENT: { http: 400, grpc: status.INVALID_ARGUMENT },
  UNSUPPORTED_HASH: { http: 400, grpc: status.INVALID_ARGUMENT },
  HASH_MISMATCH: { http: 400, grpc: status.INVALID_ARGUMENT },
  BLOCK_NOT_FOUND: { http: 404, grpc: status.NOT_FOUND },
  PATH_NOT_FOUND: { http: 404, grpc: status.NOT_FOUND },
  NOT_A_FILE: { http: 400, grpc: status.FAILED_PRECONDITION },
  BLOCK_CORRUPT: { http: 502, grpc: status.DATA_LOSS },
  BLOCK_TOO_LARGE: { http: 413, grpc: status.RESOURCE_EXHAUSTED },
  RANGE_NOT_SATISFIABLE: { http: 416, grpc: status.OUT_OF_RANGE },
  PAYLOAD_TOO_LARGE: { http: 413, grpc: status.RESOURCE_EXHAUSTED },
  QUORUM_NOT_REACHED: { http: 503, grpc: status.UNAVAILABLE },
  UPSTREAM_TIMEOUT: { http: 504, grpc: status.DEADLINE_EXCEEDED },
  UPSTREAM_UNAVAILABLE: { http: 504, grpc: status.UNAVAILABLE },
  STORE_UNAVAILABLE: { http: 503, grpc: status.UNAVAILABLE },
  CONFIG_INVALID: { http: 500, grpc: status.INTERNAL },
  ABORTED: { http: 499, grpc: status.CANCELLED },
  INVALID_CAR: { http: 400, grpc: status.INVALID_ARGUMENT },
  UNSUPPORTED_CODEC: { http: 501, grpc: status.UNIMPLEMENTED },
  UNSUPPORTED_FORMAT: { http: 400, grpc: status.INVALID_ARGUMENT },
  UNAUTHENTICATED: { http: 401, grpc: status.UNAUTHENTICATED },
  PERMISSION_DENIED: { http: 403, grpc: status.PERMISSION_DENIED },
  RATE_LIMITED: { http: 429, grpc: status.RESOURCE_EXHAUSTED },
  REQUEST_TIMEOUT: { http: 408, grpc: status.DEADLINE_EXCEEDED },
  OVERLOADED: { http: 503, grpc: status.UNAVAILABLE },
  NOT_ACCEPTABLE: { http: 406, grpc: status.FAILED_PRECONDITION },
  PATH_INSIDE_BLOCK: { http: 501, grpc: status.UNIMPLEMENTED },
  NOT_PINNED: { http: 404, grpc: status.NOT_FOUND },
} as const satisfies Record<MycelErrorCode, { http: number; grpc: status }>

/** Metadata key that carries the Mycel error code beside the gRPC status. */
export const ERROR_CODE_METADATA_KEY = 'mycel-error-code'

export function httpStatusOf(err: unknown): number {
  return isMycelError(err) ? ERROR_MAP[err.code].http : 500
}

/** A gRPC error for a handler's callback: status from the table, code in metadata. */
export function toGrpcError(err: unknown): Partial<ServiceError> {
  const metadata = new Metadata()
  if (isMycelError(err)) {
    metadata.set(ERROR_CODE_METADATA_KEY, err.code)
    return { code: ERROR_MAP[err.code].grpc, details: err.message, metadata }
  }
  return { code: status.INTERNAL, details: err instanceof Error ? err.message : String(err), metadata }
}

/** The Mycel error code a gRPC error carries, if any. */
export function mycelCodeOf(err: unknown): MycelErrorCode | undefined {
  const md = (err as Partial<ServiceError> | undefined)?.metadata
  const value = md instanceof Metadata ? md.get(ERROR_CODE_METADATA_KEY)[0] : undefined
  return typeof value === 'string' && value in ERROR_MAP ? (value as MycelErrorCode) : undefined
}

/** Rebuilds a typed Mycel error from a gRPC error received by a client. */
export function fromGrpcError(err: unknown, cid = ''): MycelError | Error {
  const e = err as Partial<ServiceError>
  const details = e.details ?? (err instanceof Error ? err.message : String(err))
  switch (mycelCodeOf(err)) {
    case 'BLOCK_NOT_FOUND':
      return new BlockNotFoundError(cid)
    case 'BLOCK_CORRUPT':
      return new BlockCorruptError(cid)
    case 'HASH_MISMATCH':
      return new HashMismatchError(cid)
    case 'INVALID_CID':
      return new InvalidCidError(cid, details)
    case 'BLOCK_TOO_LARGE':
      return Object.assign(new BlockTooLargeError(0, 0), { message: details })
    case 'STORE_UNAVAILABLE':
      return new StoreUnavailableError(details)
    case 'INVALID_ARGUMENT':
      return new InvalidArgumentError(details)
    default:
      break
  }
  switch (e.code) {
    case status.DEADLINE_EXCEEDED:
      return new UpstreamTimeoutError(details)
    case status.UNAVAILABLE:
      return new UpstreamUnavailableError(details)
    case status.NOT_FOUND:
      return new BlockNotFoundError(cid)
    case status.RESOURCE_EXHAUSTED:
      return Object.assign(new BlockTooLargeError(0, 0), { message: details })
    default:
      return err instanceof Error ? err : new Error(details)
  }
}

/** A Mycel error received over gRPC: the server's code and message, and the gRPC status. */
export class RemoteMycelError extends MycelError {
  override name = 'RemoteMycelError'
  constructor(
    readonly code: MycelErrorCode,
    message: string,
    readonly grpcCode: status,
  ) {
    super(message)
  }
}

/** Mycel codes for gRPC statuses that arrive without a Mycel code (from grpc-js or a proxy). */
const CODE_OF_BARE_STATUS: Partial<Record<status, MycelErrorCode>> = {
  [status.INVALID_ARGUMENT]: 'INVALID_ARGUMENT',
  [status.NOT_FOUND]: 'BLOCK_NOT_FOUND',
  [status.UNAVAILABLE]: 'UPSTREAM_UNAVAILABLE',
  [status.DEADLINE_EXCEEDED]: 'UPSTREAM_TIMEOUT',
  [status.RESOURCE_EXHAUSTED]: 'PAYLOAD_TOO_LARGE',
  [status.UNAUTHENTICATED]: 'UNAUTHENTICATED',
  [status.PERMISSION_DENIED]: 'PERMISSION_DENIED',
  [status.CANCELLED]: 'ABORTED',
}

/**
 * The error a client of the public API reports: the server's Mycel code and message when it sent
 * one, else a code derived from the gRPC status. Anything else (INTERNAL, UNKNOWN) stays a plain
 * error that keeps its gRPC `code`.
 */
export function remoteErrorOf(err: unknown): Error {
  if (err instanceof MycelError) return err
  const e = err as Partial<ServiceError>
  if (typeof e?.code !== 'number') return err instanceof Error ? err : new Error(String(err))
  const details = e.details || (err instanceof Error ? err.message : String(err))
  const code = mycelCodeOf(err) ?? CODE_OF_BARE_STATUS[e.code]
  if (code !== undefined) return new RemoteMycelError(code, details, e.code)
  return err instanceof Error ? err : new Error(details)
}
