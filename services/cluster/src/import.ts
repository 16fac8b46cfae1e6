import {
  type CID,
  type Durability,
  isAbortError,
  kuboImporterOptions,
  type Logger,
  type UnixfsImportParams,
} from '@mycel/core'
import { inSpan } from '@mycel/telemetry'
import { type ImportCandidate, importer } from 'ipfs-unixfs-importer'
import type { ClusterBlockstore } from './cluster-blockstore.js'

export interface ImportedEntry {
  path: string
  cid: CID
  /** Cumulative size of the entry's DAG (Kubo's `Size`). */
  size: bigint
}

export interface ImportOptions {
  params: UnixfsImportParams
  /** The upload's policy; the cluster default without one. */
  durability?: Durability
  /** Shorthand for durability replicate:R (kept for callers that predate policies). */
  replication?: number
  signal: AbortSignal
  logger: Logger
  /** Blocks the importer keeps in flight; more overlaps hashing with network and fsync. */
  blockWriteConcurrency?: number
}

/**
 * Builds UnixFS DAGs from `candidates` as Kubo does and writes every block at the write quorum.
 * Resolves only when every block of every entry is acknowledged; a failure aborts the whole
 * import and no entry is reported, so a partial upload is never acknowledged.
 */
export function importToCluster(
  cluster: ClusterBlockstore,
  candidates: AsyncIterable<ImportCandidate> | Iterable<ImportCandidate>,
  opts: ImportOptions,
): Promise<ImportedEntry[]> {
  // One span for the whole import: the write session's per-node streams and placement events
  // hang under it, and the node spans under those.
  return inSpan('mycel.upload.import', {}, async (span) => {
    const entries = await importBlocks(cluster, candidates, opts)
    span.setAttribute('mycel.upload.entries', entries.length)
    const root = entries.at(-1)
    if (root !== undefined) span.setAttribute('mycel.upload.root', root.cid.toString())
    return entries
  })
}

async function importBlocks(
  cluster: ClusterBlockstore,
  candidates: AsyncIterable<ImportCandidate> | Iterable<ImportCandidate>,
  opts: ImportOptions,
): Promise<ImportedEntry[]> {
  const session = cluster.newWriteSession(opts.durability ?? opts.replication)
  const entries: ImportedEntry[] = []
  // A client that goes away fails its pending block writes at once instead of at their timeouts.
  const onAbort = () => session.abort(new Error('upload aborted: client disconnected'))
  opts.signal.addEventListener('abort', onAbort, { once: true })
  try {
    for await (const entry of importer(candidates, cluster.forSession(session), {
      ...kuboImporterOptions(opts.params),
      blockWriteConcurrency: opts.blockWriteConcurrency ?? 32,
      // Files arrive one after another in one request body: the importer must finish reading a
      // file before it asks for the next (with read-ahead it would wait for parts that cannot
      // come until this one is consumed).
      fileImportConcurrency: 1,
    })) {
      entries.push({
        path: entry.path ?? entry.cid.toString(),
        cid: entry.cid as unknown as CID,
        size: entry.size,
      })
    }
    await session.close()
  } catch (err) {
    session.abort(err instanceof Error ? err : new Error(String(err)))
    if (!isAbortError(err)) opts.logger.warn({ err: String(err) }, 'import failed')
    throw err
  } finally {
    opts.signal.removeEventListener('abort', onAbort)
  }
  opts.logger.info(
    { root: entries.at(-1)?.cid.toString(), blocks: session.blocksWritten, bytes: session.bytesWritten },
    'import complete',
  )
  return entries
}

/**
 * The roots Kubo's add pins: the wrapping directory when wrapped, else every top-level entry
 * (each file or directory named at the top of the upload).
 */
export function topLevelRoots(entries: readonly ImportedEntry[], wrapped: boolean): CID[] {
  const root = entries.at(-1)
  if (wrapped) return root === undefined ? [] : [root.cid]
  return entries.filter((e) => !e.path.includes('/')).map((e) => e.cid)
}
