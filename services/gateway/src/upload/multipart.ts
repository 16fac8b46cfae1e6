import type { IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'
import { InvalidArgumentError, isMycelError } from '@mycel/core'
import busboy from 'busboy'
import type { ImportCandidate } from 'ipfs-unixfs-importer'

/**
 * Streams the parts of a Kubo-style multipart upload (`ipfs add`'s request body) as import
 * candidates, one at a time: busboy parses the body as it arrives, and each file's bytes flow
 * straight into the importer, so no file is buffered whole.
 *
 * Kubo's encoding: each part's filename is the URL-encoded path; a part of type
 * application/x-directory is a directory.
 */
export async function* multipartCandidates(
  req: IncomingMessage,
  wrapContent: (content: Readable, path: string) => AsyncIterable<Uint8Array>,
): AsyncGenerator<ImportCandidate> {
  const contentType = req.headers['content-type'] ?? ''
  if (!/^multipart\/form-data/i.test(contentType)) {
    throw new InvalidArgumentError(
      'expected a multipart/form-data body (as sent by `curl -F file=@PATH` or Kubo clients)',
    )
  }
  let bb: busboy.Busboy
  try {
    bb = busboy({ headers: req.headers, preservePath: true })
  } catch (err) {
    throw new InvalidArgumentError(
      `bad multipart request: ${err instanceof Error ? err.message : String(err)}`,
    )
  }

  type Event =
    | { kind: 'file'; path: string; stream: Readable; directory: boolean }
    | { kind: 'end' }
    | { kind: 'error'; err: Error }
  const events: Event[] = []
  let wake: (() => void) | undefined
  let current: Readable | undefined
  /** Set once the reader stopped (done, failed or gave up): later parts are drained, unread. */
  let closed = false
  const push = (e: Event) => {
    events.push(e)
    wake?.()
  }
  bb.on('file', (_field, stream, info) => {
    // A part's errors reach its reader through the reader's own listener; this one keeps the
    // error of a part nobody reads (any more) from becoming an uncaught exception.
    stream.on('error', () => undefined)
    if (closed) {
      stream.resume()
      return
    }
    current = stream
    const raw = info.filename ?? ''
    let path: string
    try {
      path = decodeURIComponent(raw)
    } catch {
      path = raw
    }
    push({ kind: 'file', path, stream, directory: /^application\/x-directory/i.test(info.mimeType) })
  })
  bb.on('close', () => push({ kind: 'end' }))
  const onError = (err: Error) => {
    const e = new InvalidArgumentError(`malformed or truncated multipart body: ${err.message}`)
    current?.destroy(e)
    push({ kind: 'error', err: e })
  }
  bb.on('error', onError)
  req.on('error', (err) => onError(err))
  req.on('close', () => {
    if (!req.complete) onError(new Error('client disconnected before the upload was complete'))
  })
  req.pipe(bb)

  let files = 0
  try {
    for (;;) {
      if (events.length === 0) await new Promise<void>((resolve) => (wake = resolve))
      wake = undefined
      const e = events.shift() as Event
      if (e.kind === 'error') throw e.err
      if (e.kind === 'end') break
      files++
      if (e.directory) {
        e.stream.resume()
        yield { path: e.path }
      } else {
        yield { path: e.path, content: asClientError(wrapContent(e.stream, e.path)) }
      }
    }
  } finally {
    closed = true
    for (const e of events) if (e.kind === 'file') e.stream.resume()
  }
  if (files === 0) throw new InvalidArgumentError('the multipart body holds no file part')
}

/** Errors of the multipart parser are the client's: a malformed or truncated body. */
async function* asClientError(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    yield* source
  } catch (err) {
    if (isMycelError(err)) throw err
    throw new InvalidArgumentError(
      `malformed or truncated multipart body: ${err instanceof Error ? err.message : String(err)}`,
    )
  }
}
