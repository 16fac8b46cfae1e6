import { InvalidArgumentError, PayloadTooLargeError } from '@mycel/core'
import { type AddRequest, EntryType } from '@mycel/proto'
import type { ImportCandidate } from 'ipfs-unixfs-importer'

/**
 * Turns the messages of one Add call (after its options) into import candidates, one file at a
 * time, the way the gateway turns multipart parts into them: a file's bytes flow from the call
 * into the importer as they arrive, and the next entry is read only once the current file's data
 * is consumed, so nothing is buffered beyond what gRPC flow control holds.
 */
export class AddStream {
  /** File bytes received so far. */
  received = 0
  private stashed: AddRequest | undefined

  constructor(
    private readonly messages: AsyncIterator<AddRequest>,
    private readonly maxBytes: number,
  ) {}

  /** File mode: one candidate whose content is every `data` message. */
  fileCandidates(filename: string): ImportCandidate[] {
    const content = this.fileContent(() => {
      throw new InvalidArgumentError(
        'Add: in file mode only data messages follow the options (entry messages need options.directory)',
      )
    })
    return [{ path: filename, content }]
  }

  /** Directory mode: an entry per `entry` message, a file's content being the data after it. */
  async *directoryCandidates(): AsyncGenerator<ImportCandidate> {
    let entries = 0
    for (;;) {
      const msg = await this.next()
      if (msg === undefined) break
      const m = msg.message
      if (m?.$case !== 'entry') {
        throw new InvalidArgumentError(
          m?.$case === 'data'
            ? 'Add: in directory mode every file starts with an entry message before its data'
            : 'Add: options may only be the first message',
        )
      }
      entries++
      const path = checkPath(m.value.path)
      if (m.value.type === EntryType.ENTRY_TYPE_DIRECTORY) {
        yield { path }
      } else if (m.value.type === EntryType.ENTRY_TYPE_FILE) {
        let done!: () => void
        const consumed = new Promise<void>((resolve) => (done = resolve))
        yield { path, content: this.fileContent(undefined, done) }
        // The importer reads a file to its end before it asks for the next one; waiting here
        // keeps this generator from reading the next entry's messages meanwhile.
        await consumed
      } else {
        throw new InvalidArgumentError(`Add: entry "${path}" needs type FILE or DIRECTORY`)
      }
    }
    if (entries === 0) throw new InvalidArgumentError('Add: directory mode needs at least one entry')
  }

  /** The data messages up to the next other message (left for `next`) or the end. */
  private fileContent(onOther?: () => never, onDone?: () => void): AsyncIterable<Uint8Array> {
    let finished = false
    const finish = () => {
      if (!finished) {
        finished = true
        onDone?.()
      }
    }
    return {
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<Uint8Array>> => {
          if (finished) return { done: true, value: undefined }
          let msg: AddRequest | undefined
          try {
            msg = await this.next()
          } catch (err) {
            finish()
            throw err
          }
          if (msg?.message?.$case === 'data') {
            const data = msg.message.value
            this.received += data.byteLength
            if (this.received > this.maxBytes) {
              finish()
              throw new PayloadTooLargeError(this.maxBytes)
            }
            return { done: false, value: data }
          }
          if (msg !== undefined) {
            this.stashed = msg
            if (onOther) onOther()
          }
          finish()
          return { done: true, value: undefined }
        },
        return: async (): Promise<IteratorResult<Uint8Array>> => {
          finish()
          return { done: true, value: undefined }
        },
      }),
    }
  }

  private async next(): Promise<AddRequest | undefined> {
    if (this.stashed !== undefined) {
      const m = this.stashed
      this.stashed = undefined
      return m
    }
    const r = await this.messages.next()
    return r.done ? undefined : r.value
  }
}

/** A relative '/'-separated path without empty, '.' or '..' segments. */
function checkPath(path: string): string {
  const segments = path.split('/')
  if (path === '' || path.startsWith('/') || segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new InvalidArgumentError(
      `Add: entry path "${path}" must be relative, '/'-separated, without empty, "." or ".." segments`,
    )
  }
  return path
}
