import { posix } from 'node:path'
import { type CID, NotAFileError, UnsupportedFormatError } from '@mycel/core'
import { exporter, type UnixFSEntry } from 'ipfs-unixfs-exporter'
import * as tar from 'tar-stream'

type TarHeader = Parameters<tar.Pack['entry']>[0]

/** Blocks reads of one file run ahead of the one being written, and directory children looked up ahead. */
const READ_AHEAD = 8

export interface TarSource {
  get(cid: CID, options?: { signal?: AbortSignal }): AsyncGenerator<Uint8Array>
}

export interface TarOptions {
  signal: AbortSignal
  /** Modification time of entries whose UnixFS node has none (Kubo: the time of the request). */
  mtime?: Date
}

/**
 * A UnixFS file or directory tree as a TAR stream, entries named under `rootName` exactly as
 * Kubo's tar writer names them (`path.join` of the parent and the link name). A link name that
 * would place an entry outside the root (`../x`) fails the stream, as in Kubo: such a DAG can
 * only be fetched as a CAR. Symlinks become TAR symlinks; UnixFS mode and mtime are kept when the
 * node has them (files 0644 and directories 0755 otherwise). The stream has backpressure: the
 * next block is read only as fast as the consumer takes bytes.
 */
export function tarStream(
  root: UnixFSEntry,
  rootName: string,
  store: TarSource,
  opts: TarOptions,
): AsyncIterable<Uint8Array> {
  const pack = tar.pack()
  const mtime = opts.mtime ?? new Date()
  const base = posix.normalize(rootName)
  const write = async (entry: UnixFSEntry, name: string): Promise<void> => {
    if (name !== base && !name.startsWith(`${base}/`)) {
      throw new UnsupportedFormatError(
        `"${name}" lies outside the root "${base}": relative UnixFS paths outside the root cannot be put in a TAR; fetch this DAG as a CAR`,
      )
    }
    const header = headerOf(entry, name, mtime)
    if (entry.type === 'directory') {
      await addEntry(pack, { ...header, type: 'directory' })
      for await (const child of lookAhead(entry.entries({ signal: opts.signal }), (c) =>
        exporter(c.cid, store, { signal: opts.signal }),
      )) {
        await write(child.value, posix.join(name, child.item.name))
      }
      return
    }
    if (entry.type === 'file' && entry.unixfs.type === 'symlink') {
      const target = Buffer.from(entry.unixfs.data ?? new Uint8Array()).toString('utf8')
      await addEntry(pack, { ...header, type: 'symlink', linkname: target })
      return
    }
    if (entry.type !== 'file' && entry.type !== 'raw' && entry.type !== 'identity') {
      throw new NotAFileError(
        `${name}: a ${entry.type} node (${entry.cid.toString()}) cannot be put in a TAR`,
      )
    }
    await addEntry(
      pack,
      { ...header, type: 'file', size: Number(entry.size) },
      entry.content({ signal: opts.signal, blockReadConcurrency: READ_AHEAD }),
    )
  }
  write(root, base).then(
    () => pack.finalize(),
    (err: unknown) => pack.destroy(err instanceof Error ? err : new Error(String(err))),
  )
  return pack as unknown as AsyncIterable<Uint8Array>
}

function headerOf(entry: UnixFSEntry, name: string, fallback: Date): TarHeader {
  const unixfs = entry.type === 'file' || entry.type === 'directory' ? entry.unixfs : undefined
  const dir = entry.type === 'directory'
  const mtime = unixfs?.mtime
  return {
    name,
    mode: unixfs?.mode ?? (dir ? 0o755 : 0o644),
    mtime:
      mtime === undefined
        ? fallback
        : new Date(Number(mtime.secs) * 1000 + Math.floor((mtime.nsecs ?? 0) / 1e6)),
  }
}

/** Adds one entry and writes its body with backpressure; resolves when the entry is complete. */
async function addEntry(pack: tar.Pack, header: TarHeader, body?: AsyncIterable<Uint8Array>): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()))
    if (body === undefined) return
    ;(async () => {
      for await (const chunk of body) {
        if (!sink.write(chunk)) await new Promise<void>((r) => sink.once('drain', () => r()))
      }
      sink.end(undefined)
    })().catch((err: unknown) => {
      sink.destroy(err instanceof Error ? err : new Error(String(err)))
      reject(err)
    })
  })
}

/** Maps items through `fn` with up to READ_AHEAD calls running ahead, keeping the order. */
async function* lookAhead<T, R>(
  items: AsyncIterable<T>,
  fn: (item: T) => Promise<R>,
): AsyncGenerator<{ item: T; value: R }> {
  const window: Array<{ item: T; value: Promise<R> }> = []
  for await (const item of items) {
    const value = fn(item)
    value.catch(() => undefined)
    window.push({ item, value })
    if (window.length > READ_AHEAD) {
      const next = window.shift() as { item: T; value: Promise<R> }
      yield { item: next.item, value: await next.value }
    }
  }
  for (const next of window) yield { item: next.item, value: await next.value }
}
