import { blockLinks } from '@mycel/cluster'
import type { CID } from '@mycel/core'
import { entityLinksOf, fileLinksInRange } from './links.js'

export interface Block {
  cid: CID
  bytes: Uint8Array
}

export type BlockGetter = (cid: CID, signal?: AbortSignal) => Promise<Uint8Array>

/** Trustless gateway dag-scope: just the block, the entity (file or directory), or the whole DAG. */
export type DagScope = 'block' | 'entity' | 'all'

export interface WalkOptions {
  scope: DagScope
  /** dups=y: repeat a block each time the DAG links to it (CAR "dups" parameter). */
  dups: boolean
  signal?: AbortSignal
  /** CIDs already emitted (e.g. the blocks of a resolved path), shared with the caller. */
  seen?: Set<string>
  /**
   * entity-bytes, resolved to inclusive file offsets: only the file blocks holding these bytes
   * (the root is always sent). Applies when the root is a UnixFS file.
   */
  byteRange?: { from: number; to: number }
}

/** Siblings fetched ahead of the one being emitted, so node round trips overlap. */
const PREFETCH = 8

/**
 * The blocks of the DAG under `root`, depth first in link order (the deterministic "dfs" order
 * of the trustless gateway spec), each block before its children. Only the current path and
 * PREFETCH siblings per level are in memory; with dups=n a set of emitted CIDs (about 60 bytes
 * each) suppresses repeats.
 */
export async function* walkDag(
  root: Block,
  get: BlockGetter,
  opts: WalkOptions,
): AsyncGenerator<Block, void, undefined> {
  const seen = opts.seen ?? new Set<string>()
  const range = opts.byteRange
  const linksFor = (block: Block, offset: number): Array<{ cid: CID; offset: number }> => {
    if (range !== undefined) return fileLinksInRange(block.cid, block.bytes, offset, range)
    const links =
      opts.scope === 'entity' ? entityLinksOf(block.cid, block.bytes) : blockLinks(block.cid, block.bytes)
    return links.map((cid) => ({ cid, offset: 0 }))
  }
  type Pending = { cid: CID; offset: number; bytes: Promise<Uint8Array> }
  async function* visit(block: Block, offset: number): AsyncGenerator<Block, void, undefined> {
    if (!opts.dups) seen.add(block.cid.toString())
    yield block
    if (opts.scope === 'block') return
    const links = linksFor(block, offset)
    const window: Pending[] = []
    let next = 0
    const fill = () => {
      while (window.length < PREFETCH && next < links.length) {
        const link = links[next++] as { cid: CID; offset: number }
        if (!opts.dups && seen.has(link.cid.toString())) continue
        const bytes = get(link.cid, opts.signal)
        // Awaited below in order; a rejection is handled there, not as an unhandled one.
        bytes.catch(() => undefined)
        window.push({ ...link, bytes })
      }
    }
    fill()
    while (window.length > 0) {
      const child = window.shift() as Pending
      fill()
      // An earlier sibling's subtree may have emitted it meanwhile.
      if (!opts.dups && seen.has(child.cid.toString())) continue
      yield* visit({ cid: child.cid, bytes: await child.bytes }, child.offset)
    }
  }
  yield* visit(root, 0)
}
