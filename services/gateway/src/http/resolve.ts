import {
  asPathNotFound,
  type ClusterBlockstore,
  type ContentPath,
  formatContentPath,
  parseContentPath,
} from '@mycel/cluster'
import type { CID } from '@mycel/core'
import { exporter, type UnixFSEntry, walkPath } from 'ipfs-unixfs-exporter'
import type { Block } from '../ipld/dag-walk.js'

export { type ContentPath, formatContentPath, parseContentPath }

/** The path as a header value (X-Ipfs-Path): each segment percent-encoded, so it stays ASCII. */
export function headerContentPath(p: ContentPath): string {
  return formatContentPath({ root: p.root, segments: p.segments.map(encodeURIComponent) })
}

/**
 * Resolves a path with the UnixFS exporter (dag-pb directories, HAMT shards, dag-cbor paths).
 * `visited`, when given, receives every block the resolution read, in order: the blocks a
 * client needs to verify the path (trustless CAR responses start with them). `roots`, when
 * given, receives the CID of every node along the path, root first and the entry last (the
 * path gateway's `X-Ipfs-Roots`); the blocks of that walk are remembered for this request only,
 * so the exporter does not fetch them twice.
 */
export async function resolveContentPath(
  cluster: ClusterBlockstore,
  path: ContentPath,
  signal: AbortSignal,
  visited?: Block[],
  roots?: CID[],
): Promise<UnixFSEntry> {
  const seen = roots === undefined ? undefined : new Map<string, Uint8Array>()
  const store =
    visited === undefined && seen === undefined
      ? cluster
      : {
          async *get(cid: CID, options: { signal?: AbortSignal } = {}) {
            const key = cid.toString()
            let bytes = seen?.get(key)
            if (bytes === undefined) {
              bytes = await cluster.getBlock(cid, options)
              seen?.set(key, bytes)
              visited?.push({ cid, bytes })
            }
            yield bytes
          },
        }
  const text = [path.root.toString(), ...path.segments].join('/')
  try {
    if (roots !== undefined) {
      let last: CID[] = [path.root]
      for await (const step of walkPath(text, store, { signal })) last = step.roots as unknown as CID[]
      roots.push(...last)
    }
    return await exporter(text, store, { signal })
  } catch (err) {
    throw asPathNotFound(err, path)
  }
}
