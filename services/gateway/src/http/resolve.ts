import * as dagPb from '@ipld/dag-pb'
import {
  asPathNotFound,
  type ClusterBlockstore,
  type ContentPath,
  formatContentPath,
  parseContentPath,
} from '@mycel/cluster'
import {
  type CID,
  isAbortError,
  isMycelError,
  NotAFileError,
  PathInsideBlockError,
  PathNotFoundError,
  UnsupportedCodecError,
} from '@mycel/core'
import { exporter, type UnixFSDirectoryEntry, type UnixFSEntry, walkPath } from 'ipfs-unixfs-exporter'
import type { Block } from '../ipld/dag-walk.js'
import { assertDecodable } from '../ipld/links.js'

// Content paths are parsed and printed by @mycel/cluster (the nodes' gRPC API reads the same forms).
export { type ContentPath, formatContentPath, parseContentPath }

/** The path as a header value (X-Ipfs-Path): each segment percent-encoded, so it stays ASCII. */
export function headerContentPath(p: ContentPath): string {
  return formatContentPath({ root: p.root, segments: p.segments.map(encodeURIComponent) })
}

/** The cluster's blocks as the UnixFS exporter reads them, each checked to decode (else a 400). */
export function decodableBlocks(cluster: Pick<ClusterBlockstore, 'getBlock'>) {
  return {
    async *get(cid: CID, options: { signal?: AbortSignal } = {}) {
      const bytes = await cluster.getBlock(cid, options)
      assertDecodable(cid, bytes)
      yield bytes
    },
  }
}

/** A path walked to its end: the CID there and every CID along the way (root first). */
export interface ResolvedPath {
  cid: CID
  roots: CID[]
  /** Reads blocks, answering the ones the walk already read from memory. */
  store: PathStore
}

export interface PathStore {
  get(cid: CID, options?: { signal?: AbortSignal }): AsyncGenerator<Uint8Array>
  /**
   * Runs `peek` keeping every block it reads until the next read of that block, which takes it
   * from memory: content-type sniffing reads a file's first leaf, which the download then streams
   * again, and one block should cost one fetch from the cluster.
   */
  peek<T>(peek: () => Promise<T>): Promise<T>
}

/**
 * Walks a path with the UnixFS exporter's resolvers: dag-pb directories (plain and HAMT), and
 * dag-cbor/dag-json/json documents, whose path segments name fields and follow links. A path
 * that ends inside a document on a value that is not a link is refused (501, as Kubo), a name
 * that is not there is a 404. `visited`, when given, receives every block the walk read, in
 * order: the blocks a client needs to verify the path (trustless CAR responses start with
 * them). The blocks of the walk (and the terminal block, once read) are kept for this request
 * only; blocks read later through `store`, such as a file's content, are not.
 */
export async function resolvePath(
  cluster: ClusterBlockstore,
  path: ContentPath,
  signal: AbortSignal,
  visited?: Block[],
): Promise<ResolvedPath & { done(): void }> {
  const seen = new Map<string, Uint8Array>()
  // Blocks a peek read, each handed out once more (then dropped: memory stays one leaf or so).
  const peeked = new Map<string, Uint8Array>()
  let walking = true
  let peeking = false
  const store: PathStore = {
    async *get(cid: CID, options: { signal?: AbortSignal } = {}) {
      const key = cid.toString()
      let bytes = seen.get(key)
      if (bytes === undefined && !peeking) {
        bytes = peeked.get(key)
        peeked.delete(key)
      }
      if (bytes === undefined) {
        bytes = await cluster.getBlock(cid, options)
        assertDecodable(cid, bytes)
        if (walking) {
          seen.set(key, bytes)
          visited?.push({ cid, bytes })
        } else if (peeking) {
          peeked.set(key, bytes)
        }
      }
      yield bytes
    },
    async peek<T>(peek: () => Promise<T>): Promise<T> {
      peeking = true
      try {
        return await peek()
      } finally {
        peeking = false
      }
    },
  }
  const text = [path.root.toString(), ...path.segments].join('/')
  let last: { cid: CID; roots: CID[]; remainder: string[] } = {
    cid: path.root,
    roots: [path.root],
    remainder: path.segments,
  }
  try {
    for await (const step of walkPath(text, store, { signal })) {
      last = step as unknown as typeof last
    }
  } catch (err) {
    if ((err as { name?: string }).name === 'NoResolverError') {
      throw new UnsupportedCodecError(last.cid.code, `cannot walk the path ${formatContentPath(path)}`)
    }
    throw mapResolveError(err, path)
  }
  if (last.remainder.length > 0 && last.cid.code === dagPb.code) {
    // A UnixFS file, symlink or raw node has no named links (the walker stops on it with the
    // rest of the path): nothing there, as Kubo answers.
    throw new PathNotFoundError(`no link named "${last.remainder[0]}" under ${last.cid.toString()}`)
  }
  if (last.remainder.length > 0) {
    // The walk stopped inside a document: what is left names a field that is not a link.
    throw new PathInsideBlockError(
      `"${last.remainder.join('/')}" of ${formatContentPath(path)} could not be returned: ` +
        `reading IPLD values other than links is not implemented; try ${formatContentPath({
          root: path.root,
          segments: path.segments.slice(0, path.segments.length - last.remainder.length),
        })}`,
    )
  }
  return {
    cid: last.cid,
    roots: [...last.roots],
    store,
    done: () => {
      walking = false
    },
  }
}

/**
 * Resolves a path to an exporter entry (file, directory, raw block, document). `roots`, when
 * given, receives the CID of every node along the path, root first and the entry last (the path
 * gateway's `X-Ipfs-Roots`); see resolvePath for `visited`.
 */
export async function resolveContentPath(
  cluster: ClusterBlockstore,
  path: ContentPath,
  signal: AbortSignal,
  visited?: Block[],
  roots?: CID[],
): Promise<UnixFSEntry> {
  const resolved = await resolvePath(cluster, path, signal, visited)
  roots?.push(...resolved.roots)
  try {
    return await exporter(resolved.cid, resolved.store, { signal })
  } catch (err) {
    throw mapResolveError(err, path)
  } finally {
    resolved.done()
  }
}

function mapResolveError(err: unknown, path: ContentPath): unknown {
  const notFound = asPathNotFound(err, path)
  return notFound !== err ? notFound : unixfsReadError(err, formatContentPath(path))
}

/** A directory's entries, with errors about the content as client errors (see unixfsReadError). */
export async function* readEntries(
  entry: UnixFSEntry,
  what: string,
  signal: AbortSignal,
): AsyncGenerator<UnixFSDirectoryEntry> {
  if (entry.type !== 'directory') return
  try {
    yield* entry.entries({ signal })
  } catch (err) {
    throw unixfsReadError(err, what)
  }
}

/**
 * An error of the UnixFS reader as the client's: the reader's only inputs are the path and the
 * blocks, and the blockstore reports the cluster's own problems as Mycel errors (not found,
 * unreachable) or aborts, which pass unchanged. Anything else is about the content (a node that is
 * not UnixFS, sizes that do not add up, a block that does not decode as the reader expects, from
 * ipfs-unixfs-exporter, @ipld/dag-pb or protons alike): the content cannot be read as a file or
 * directory. A codec the reader has no resolver for is 501, as for CAR traversal.
 */
export function unixfsReadError(err: unknown, what: string): unknown {
  if (isMycelError(err) || isAbortError(err) || !(err instanceof Error)) return err
  if ((err as { code?: unknown }).code === 'ERR_NO_RESOLVER') {
    // "No resolver for code N"
    return new UnsupportedCodecError(Number(/(\d+)\s*$/.exec(err.message)?.[1] ?? 0), what)
  }
  return new NotAFileError(
    `${what} cannot be read as UnixFS: ${err.message}; read its blocks with format=raw`,
  )
}
