import type { Readable } from 'node:stream'

/** Bytes received so far by one upload request, shared by all of its file parts. */
export interface ByteBudget {
  received: number
  readonly limit: number
}

/**
 * Counts bytes through an upload body and fails with PayloadTooLargeError once the request's
 * budget is exceeded, without ever holding more than one chunk.
 */
export async function* limitBytes(
  source: Readable,
  budget: ByteBudget,
  onBytes: (n: number) => void,
  tooLarge: () => Error,
): AsyncGenerator<Uint8Array> {
  // Leaving the loop early must not destroy the request: the error response still has to reach
  // the client over the same connection.
  for await (const chunk of source.iterator({ destroyOnReturn: false }) as AsyncIterable<Uint8Array>) {
    budget.received += chunk.byteLength
    if (budget.received > budget.limit) throw tooLarge()
    onBytes(chunk.byteLength)
    yield chunk
  }
}
