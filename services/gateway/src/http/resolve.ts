import { type CID, InvalidArgumentError, PathNotFoundError, parseCid } from '@mycel/core'
import { exporter, type UnixFSEntry } from 'ipfs-unixfs-exporter'
import type { ClusterBlockstore } from '../cluster/cluster-blockstore.js'
import type { Block } from '../ipld/dag-walk.js'

/** An immutable content path: a root CID and the link names below it. */
export interface ContentPath {
  root: CID
  segments: string[]
}

/** Parses `CID`, `CID/a/b`, `/ipfs/CID[/a/b]` (the forms Kubo's RPC accepts as `arg`). */
export function parseContentPath(arg: string): ContentPath {
  let text = arg.trim()
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
 * Resolves a path with the UnixFS exporter (dag-pb directories, HAMT shards, dag-cbor paths).
 * `visited`, when given, receives every block the resolution read, in order: the blocks a
 * client needs to verify the path (trustless CAR responses start with them).
 */
export async function resolveContentPath(
  cluster: ClusterBlockstore,
  path: ContentPath,
  signal: AbortSignal,
  visited?: Block[],
): Promise<UnixFSEntry> {
  const store =
    visited === undefined
      ? cluster
      : {
          async *get(cid: CID, options: { signal?: AbortSignal } = {}) {
            const bytes = await cluster.getBlock(cid, options)
            visited.push({ cid, bytes })
            yield bytes
          },
        }
  try {
    return await exporter([path.root.toString(), ...path.segments].join('/'), store, { signal })
  } catch (err) {
    const name = (err as { name?: string }).name
    if (
      name === 'NotFoundError' ||
      name === 'ResolveError' ||
      (err as { code?: string }).code === 'ERR_NOT_FOUND'
    ) {
      throw new PathNotFoundError(`no link named "${path.segments.join('/')}" under ${path.root.toString()}`)
    }
    throw err
  }
}
