import * as dagPb from '@ipld/dag-pb'
import type { ImportedEntry } from '@mycel/cluster'
import { CID, CODEC_DAG_PB } from '@mycel/core'
import { UnixFS } from 'ipfs-unixfs'
import type { ImportCandidate } from 'ipfs-unixfs-importer'
import { sha256 } from 'multiformats/hashes/sha2'

/** Passes candidates through, noting the paths of directory parts (candidates without content). */
export async function* noteDirectories(
  source: AsyncIterable<ImportCandidate>,
  dirs: string[],
): AsyncGenerator<ImportCandidate> {
  for await (const candidate of source) {
    const content = 'content' in candidate ? candidate.content : undefined
    if (content === undefined && candidate.path !== undefined) dirs.push(trimSlashes(candidate.path))
    yield candidate
  }
}

/**
 * The importer builds empty directories into their parents but never reports them; Kubo's add
 * does, with a line of their own. Each directory part that no entry reports is an empty UnixFS
 * directory (no mode or mtime: add takes neither), whose CID is fixed per CID version: it goes
 * in before its parent's line, where Kubo puts it.
 */
export async function withEmptyDirectories(
  entries: ImportedEntry[],
  dirs: string[],
  cidVersion: 0 | 1,
): Promise<ImportedEntry[]> {
  const reported = new Set(entries.map((e) => e.path))
  const missing = dirs.map(trimSlashes).filter((d) => !reported.has(d))
  if (missing.length === 0) return entries
  const bytes = dagPb.encode({ Data: new UnixFS({ type: 'directory' }).marshal(), Links: [] })
  const cid = CID.create(cidVersion, CODEC_DAG_PB, await sha256.digest(bytes)) as CID
  const out = [...entries]
  for (const path of new Set(missing)) {
    const parent = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : ''
    const at = out.findIndex((e) => e.path === parent)
    const empty: ImportedEntry = { path, cid, size: BigInt(bytes.byteLength) }
    if (at >= 0) out.splice(at, 0, empty)
    else out.push(empty)
  }
  return out
}

/**
 * Which entries Kubo's add answers with: all of them; with `silent`, only directories (Kubo's
 * adder mutes its file events only). `quiet` and `quieter` change nothing on the wire: Kubo's
 * CLI applies them when it prints.
 */
export function addOutput(entries: ImportedEntry[], silent: boolean, dirs: string[]): ImportedEntry[] {
  if (!silent) return entries
  const isDir = (p: string) => p === '' || dirs.includes(p) || entries.some((e) => e.path.startsWith(`${p}/`))
  return entries.filter((e) => isDir(e.path))
}

function trimSlashes(p: string): string {
  return p.replace(/^\/+|\/+$/g, '')
}
