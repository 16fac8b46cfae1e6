import { createReadStream, createWriteStream } from 'node:fs'
import { lstat, mkdir, readdir, rename, rm } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { AddEntryInput, AddOptions, AddResult, CallOpts, ListEntry, MycelClient } from './client.js'

export interface AddPathOptions extends AddOptions {
  /** Include files and directories whose names start with '.' (Kubo's `--hidden`). */
  hidden?: boolean | undefined
}

/** Bytes and entries of a local file or tree, for progress totals. */
export async function measurePath(
  path: string,
  opts: { hidden?: boolean | undefined } = {},
): Promise<{ bytes: number; files: number }> {
  const st = await lstat(path)
  if (st.isFile()) return { bytes: st.size, files: 1 }
  let bytes = 0
  let files = 0
  for await (const e of walk(path, basename(path), opts.hidden ?? false)) {
    if (e.size !== undefined) {
      bytes += e.size
      files++
    }
  }
  return { bytes, files }
}

/**
 * Adds a local file, or a directory tree as `ipfs add -r` does (same CIDs: the directory's own
 * name is the root entry, hidden names are skipped unless `hidden`). Re-sent whole to another
 * node if the first fails, since the files can be read again.
 */
export async function addPath(
  client: MycelClient,
  path: string,
  opts: AddPathOptions = {},
): Promise<AddResult> {
  const st = await lstat(path)
  if (st.isFile()) {
    return client.add(() => createReadStream(path, { highWaterMark: 1024 * 1024 }), {
      filename: basename(path),
      ...opts,
    })
  }
  if (!st.isDirectory()) throw new Error(`${path} is neither a file nor a directory`)
  const hidden = opts.hidden ?? false
  return client.addEntries(
    async function* () {
      for await (const e of walk(path, basename(path), hidden)) {
        yield e.size === undefined
          ? { path: e.path }
          : { path: e.path, content: createReadStream(e.local, { highWaterMark: 1024 * 1024 }) }
      }
    },
    { ...opts, replayable: true },
  )
}

interface WalkEntry {
  /** Path inside the added tree ('/'-separated). */
  path: string
  local: string
  /** File size; undefined for a directory. */
  size?: number
}

/** Depth first, names in byte order; symlinks and special files are refused by name. */
async function* walk(
  local: string,
  path: string,
  hidden: boolean,
): AsyncGenerator<WalkEntry & AddEntryInput> {
  yield { path, local }
  const names = (await readdir(local)).sort()
  for (const name of names) {
    if (!hidden && name.startsWith('.')) continue
    const child = join(local, name)
    const st = await lstat(child)
    if (st.isDirectory()) yield* walk(child, `${path}/${name}`, hidden)
    else if (st.isFile()) yield { path: `${path}/${name}`, local: child, size: st.size }
    else
      throw new Error(`${child}: only regular files and directories can be added (not symlinks or devices)`)
  }
}

export interface DownloadOptions extends CallOpts {
  /** Called with the bytes written so far. */
  onProgress?: ((bytes: number) => void) | undefined
}

/** A tree to download: its files and directories, with sizes, listed before any byte is fetched. */
export interface RemoteTree {
  type: 'file' | 'directory'
  /** Total file bytes. */
  bytes: number
  files: Array<{ path: string; cid: string; size: number }>
  directories: string[]
  /** Entries that are neither files nor directories (symlinks...), not downloaded. */
  skipped: string[]
}

/** Lists what `download` will fetch (recursively for a directory). */
export async function listTree(
  client: MycelClient,
  cidPath: string,
  opts: CallOpts = {},
): Promise<RemoteTree> {
  const stat = await client.stat(cidPath, opts)
  if (stat.type === 'file' || stat.type === 'raw' || stat.type === 'identity') {
    return {
      type: 'file',
      bytes: stat.size,
      files: [{ path: '', cid: stat.cid, size: stat.size }],
      directories: [],
      skipped: [],
    }
  }
  if (stat.type !== 'directory')
    throw new Error(`${cidPath} is a ${stat.type}: only files and directories can be fetched`)
  const tree: RemoteTree = { type: 'directory', bytes: 0, files: [], directories: [''], skipped: [] }
  const visit = async (cid: string, prefix: string) => {
    const entries: ListEntry[] = await client.ls(cid, opts)
    for (const e of entries) {
      const path = prefix === '' ? e.name : `${prefix}/${e.name}`
      if (e.type === 'directory') {
        tree.directories.push(path)
        await visit(e.cid, path)
      } else if (e.type === 'file' || e.type === 'raw' || e.type === 'identity') {
        tree.files.push({ path, cid: e.cid, size: e.size })
        tree.bytes += e.size
      } else {
        tree.skipped.push(path)
      }
    }
  }
  await visit(stat.cid, '')
  return tree
}

/**
 * Writes a file or directory tree to `dest`. Each file goes to a temporary name first and is
 * renamed when complete, so an interrupted download never leaves a file that looks whole.
 */
export async function download(
  client: MycelClient,
  tree: RemoteTree,
  dest: string,
  opts: DownloadOptions = {},
): Promise<void> {
  let written = 0
  for (const dir of tree.directories) await mkdir(join(dest, dir), { recursive: true })
  for (const f of tree.files) {
    const target = f.path === '' ? dest : join(dest, f.path)
    const partial = `${target}.mycel-partial`
    try {
      await pipeline(
        client.cat(f.cid, opts),
        async function* (source: AsyncIterable<Uint8Array>) {
          for await (const chunk of source) {
            written += chunk.byteLength
            opts.onProgress?.(written)
            yield chunk
          }
        },
        createWriteStream(partial),
      )
      await rename(partial, target)
    } catch (err) {
      await rm(partial, { force: true })
      throw err
    }
  }
}
