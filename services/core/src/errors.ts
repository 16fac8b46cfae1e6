/**
 * One error class per condition a user or a peer can cause. Each has a stable `code`; the
 * mapping of codes to HTTP and gRPC statuses lives in one table (@mycel/proto error-map).
 */
export type MycelErrorCode =
  | 'INVALID_CID'
  | 'INVALID_ARGUMENT'
  | 'UNSUPPORTED_HASH'
  | 'HASH_MISMATCH'
  | 'BLOCK_NOT_FOUND'
  | 'BLOCK_CORRUPT'
  | 'BLOCK_TOO_LARGE'
  | 'NOT_A_FILE'
  | 'PATH_NOT_FOUND'
  | 'RANGE_NOT_SATISFIABLE'
  | 'PAYLOAD_TOO_LARGE'
  | 'QUORUM_NOT_REACHED'
  | 'UPSTREAM_TIMEOUT'
  | 'UPSTREAM_UNAVAILABLE'
  | 'STORE_UNAVAILABLE'
  | 'CONFIG_INVALID'
  | 'ABORTED'
  | 'INVALID_CAR'
  | 'UNSUPPORTED_CODEC'
  | 'UNSUPPORTED_FORMAT'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'RATE_LIMITED'
  | 'REQUEST_TIMEOUT'
  | 'OVERLOADED'
  | 'NOT_ACCEPTABLE'
  | 'PATH_INSIDE_BLOCK'
  | 'NOT_PINNED'

export abstract class MycelError extends Error {
  abstract readonly code: MycelErrorCode
}

export class InvalidCidError extends MycelError {
  readonly code = 'INVALID_CID'
  override name = 'InvalidCidError'
  constructor(input: string, reason?: string) {
    super(`invalid CID "${truncate(input)}"${reason ? `: ${reason}` : ''}`)
  }
}

export class InvalidArgumentError extends MycelError {
  readonly code = 'INVALID_ARGUMENT'
  override name = 'InvalidArgumentError'
}

export class UnsupportedHashError extends MycelError {
  readonly code = 'UNSUPPORTED_HASH'
  override name = 'UnsupportedHashError'
  constructor(hashCode: number) {
    super(`unsupported multihash function 0x${hashCode.toString(16)}; Mycel verifies sha2-256 and identity`)
  }
}

export class HashMismatchError extends MycelError {
  readonly code = 'HASH_MISMATCH'
  override name = 'HashMismatchError'
  /** `context` says where the block came from (e.g. "block 3 of the CAR"). */
  constructor(cid: string, context?: string) {
    super(`${context ? `${context}: ` : ''}block bytes do not hash to ${cid}`)
  }
}

export class BlockNotFoundError extends MycelError {
  readonly code = 'BLOCK_NOT_FOUND'
  override name = 'BlockNotFoundError'
  /** `context` says where the block was expected (e.g. "in the DAG of ROOT"). */
  constructor(cid: string, context?: string) {
    super(`block ${cid} not found${context ? ` ${context}` : ''}`)
  }
}

export class BlockCorruptError extends MycelError {
  readonly code = 'BLOCK_CORRUPT'
  override name = 'BlockCorruptError'
  constructor(cid: string) {
    super(`stored copy of block ${cid} failed verification`)
  }
}

export class BlockTooLargeError extends MycelError {
  readonly code = 'BLOCK_TOO_LARGE'
  override name = 'BlockTooLargeError'
  constructor(size: number, max: number) {
    super(`block of ${size} bytes exceeds the ${max}-byte limit`)
  }
}

export class NotAFileError extends MycelError {
  readonly code = 'NOT_A_FILE'
  override name = 'NotAFileError'
}

export class PathNotFoundError extends MycelError {
  readonly code = 'PATH_NOT_FOUND'
  override name = 'PathNotFoundError'
}

export class RangeNotSatisfiableError extends MycelError {
  readonly code = 'RANGE_NOT_SATISFIABLE'
  override name = 'RangeNotSatisfiableError'
  constructor(
    readonly size: number,
    range: string,
  ) {
    super(`range "${truncate(range)}" cannot be satisfied for ${size} bytes`)
  }
}

export class PayloadTooLargeError extends MycelError {
  readonly code = 'PAYLOAD_TOO_LARGE'
  override name = 'PayloadTooLargeError'
  constructor(limit: number) {
    super(`upload exceeds the limit of ${limit} bytes`)
  }
}

export interface QuorumFailure {
  node: string
  error: string
}

/** A write reached fewer nodes than the write quorum; carries the facts (Garage's Quorum error). */
export class QuorumNotReachedError extends MycelError {
  readonly code = 'QUORUM_NOT_REACHED'
  override name = 'QuorumNotReachedError'
  constructor(
    readonly needed: number,
    readonly acked: number,
    readonly failures: QuorumFailure[],
    what = 'write',
  ) {
    super(
      `${what} quorum not reached: needed ${needed}, acknowledged by ${acked}` +
        (failures.length > 0 ? `; failures: ${failures.map((f) => `${f.node}: ${f.error}`).join('; ')}` : ''),
    )
  }
}

export class UpstreamTimeoutError extends MycelError {
  readonly code = 'UPSTREAM_TIMEOUT'
  override name = 'UpstreamTimeoutError'
}

/** Every node that could hold the data was unreachable, so "not found" cannot be decided. */
export class UpstreamUnavailableError extends MycelError {
  readonly code = 'UPSTREAM_UNAVAILABLE'
  override name = 'UpstreamUnavailableError'
}

export class StoreUnavailableError extends MycelError {
  readonly code = 'STORE_UNAVAILABLE'
  override name = 'StoreUnavailableError'
}

export class ConfigInvalidError extends MycelError {
  readonly code = 'CONFIG_INVALID'
  override name = 'ConfigInvalidError'
  constructor(readonly issues: string[]) {
    super(`invalid configuration:\n  ${issues.join('\n  ')}`)
  }
}

/** A CAR stream that cannot be read: bad header, unsupported version, truncated block section. */
export class InvalidCarError extends MycelError {
  readonly code = 'INVALID_CAR'
  override name = 'InvalidCarError'
}

/** Content whose IPLD codec Mycel cannot decode, so its links cannot be followed. */
export class UnsupportedCodecError extends MycelError {
  readonly code = 'UNSUPPORTED_CODEC'
  override name = 'UnsupportedCodecError'
  constructor(codec: number, what: string) {
    super(
      `${what}: IPLD codec 0x${codec.toString(16)} is not supported (raw, dag-pb, dag-cbor, dag-json are)`,
    )
  }
}

/** A response format (format=, Accept) or CAR parameter the gateway does not serve. */
export class UnsupportedFormatError extends MycelError {
  readonly code = 'UNSUPPORTED_FORMAT'
  override name = 'UnsupportedFormatError'
}

/**
 * A response format that this content cannot be given in without converting it (a dag-pb file
 * as dag-json, a dag-cbor block as dag-json): IPIP-524 leaves codec conversion out, so 406.
 */
export class NotAcceptableError extends MycelError {
  readonly code = 'NOT_ACCEPTABLE'
  override name = 'NotAcceptableError'
}

/**
 * A path that ends inside a dag-cbor or dag-json document, on a value that is not a link:
 * reading such values over the gateway is not implemented (as in Kubo: 501).
 */
export class PathInsideBlockError extends MycelError {
  readonly code = 'PATH_INSIDE_BLOCK'
  override name = 'PathInsideBlockError'
}

/** Unpin or a pin lookup of a CID that has no pin. */
export class NotPinnedError extends MycelError {
  readonly code = 'NOT_PINNED'
  override name = 'NotPinnedError'
  constructor(cid: string) {
    super(`${cid} is not pinned`)
  }
}

/** A call without credentials, or with a token that is not configured. */
export class UnauthenticatedError extends MycelError {
  readonly code = 'UNAUTHENTICATED'
  override name = 'UnauthenticatedError'
}

/** A valid token that lacks the scope the operation needs. */
export class PermissionDeniedError extends MycelError {
  readonly code = 'PERMISSION_DENIED'
  override name = 'PermissionDeniedError'
}

/** A client over its request rate or its concurrent requests (HTTP 429 with Retry-After). */
export class RateLimitedError extends MycelError {
  readonly code = 'RATE_LIMITED'
  override name = 'RateLimitedError'
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message)
  }
}

/** A client that sends its request (headers or body) too slowly (HTTP 408). */
export class RequestTimeoutError extends MycelError {
  readonly code = 'REQUEST_TIMEOUT'
  override name = 'RequestTimeoutError'
}

/** The service is at its overall capacity; the client may retry later (HTTP 503 with Retry-After). */
export class OverloadedError extends MycelError {
  readonly code = 'OVERLOADED'
  override name = 'OverloadedError'
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message)
  }
}

export function isMycelError(err: unknown): err is MycelError {
  return err instanceof MycelError
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError')
}

function truncate(s: string, max = 120): string {
  return s.length > max ? `${s.slice(0, max)}…` : s
}
