import { type CID, InvalidArgumentError, PathNotFoundError, parseCid } from '@mycel/core'
import { exporter, type UnixFSEntry } from 'ipfs-unixfs-exporter'
import type { ClusterBlockstore } from './cluster-blockstore.js'

/** An immutable content path: a root CID and the link names below it. */
export interface ContentPath {
  root: CID
  segments: string[]
}

/** Parses `CID`, `CID/a/b`, `/ipfs/CID[/a/b]` (the forms Kubo's RPC and the gRPC API accept). */
export function parseContentPath(arg: string): ContentPath {
  // Leading white space is a copy-paste accident; trailing white space may belong to a name (the
  // CID itself is trimmed by parseCid).
  let text = arg.trimStart()
  if (text.startsWith('/ipns/')) {
    throw new InvalidArgumentError(`"${arg}": IPNS names are not supported; use an /ipfs/ path`)
  }
  if (text.startsWith('/ipfs/')) text = text.slice('/ipfs/'.length)
  else if (text.startsWith('/')) throw new InvalidArgumentError(`"${arg}" is not a CID or an /ipfs/ path`)
  const [first = '', ...rest] = text.split('/')
  const segments = rest.filter((s) => s !== '')
  for (const s of segments) {
    if (s === '.' || s === '..')
      throw new InvalidArgumentError(`"${arg}": "." and ".." are not path segments`)
  }
  return { root: parseCid(first), segments }
}

export function formatContentPath(p: ContentPath): string {
  return `/ipfs/${p.root.toString()}${p.segments.length > 0 ? `/${p.segments.join('/')}` : ''}`
}

/**
 * The UnixFS exporter's "no such link" errors become PathNotFoundError; anything else is returned
 * unchanged (for the caller to map or rethrow).
 */
export function asPathNotFound(err: unknown, path: ContentPath): unknown {
  const name = (err as { name?: string }).name
  const code = (err as { code?: string }).code
  if (
    name === 'NotFoundError' ||
    name === 'ResolveError' ||
    name === 'BadPathError' ||
    code === 'ERR_NOT_FOUND' ||
    // A dag-pb node that is not UnixFS, or a path into a file's chunks: the path names nothing a
    // UnixFS reader can follow (the block itself can still be read raw).
    (code === 'ERR_NOT_UNIXFS' && path.segments.length > 0)
  ) {
    return new PathNotFoundError(`no link named "${path.segments.join('/')}" under ${path.root.toString()}`)
  }
  return err
}

/** Resolves a path with the UnixFS exporter (directories, HAMT shards, dag-cbor paths). */
export async function resolvePath(
  cluster: ClusterBlockstore,
  path: ContentPath,
  signal: AbortSignal,
): Promise<UnixFSEntry> {
  try {
    return await exporter([path.root.toString(), ...path.segments].join('/'), cluster, { signal })
  } catch (err) {
    throw asPathNotFound(err, path)
  }
}
