import type { ImporterOptions } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { UNIXFS_CHUNK_SIZE, UNIXFS_MAX_LINKS } from '../constants.js'
import { InvalidArgumentError } from '../errors.js'

export interface UnixfsImportParams {
  /** 0 or 1. Mycel defaults to 1 (Kubo's `--cid-version=1`). */
  cidVersion: 0 | 1
  /** Leaves as raw blocks. Implied by CIDv1 in Kubo; CIDv0 requires false. */
  rawLeaves: boolean
  /** Fixed chunk size in bytes. */
  chunkSize: number
  /** Wrap the added files in a directory. */
  wrapWithDirectory: boolean
}

export const DEFAULT_IMPORT_PARAMS: UnixfsImportParams = {
  cidVersion: 1,
  rawLeaves: true,
  chunkSize: UNIXFS_CHUNK_SIZE,
  wrapWithDirectory: false,
}

/** Kubo rejects chunks above 1 MiB (go-ipfs-chunker's ChunkSizeLimit), and so do we. */
export const MAX_CHUNK_SIZE = 1_048_576

/**
 * Importer options that build exactly the DAG Kubo's `ipfs add` builds for the same parameters:
 * fixed-size chunks, balanced layout with 174 links per node, a single chunk reduced to its leaf,
 * dag-pb links before data. With cid-version 0 and raw leaves, the leaves are CIDv1 raw blocks
 * under CIDv0 dag-pb nodes, as in Kubo.
 */
export function kuboImporterOptions(params: UnixfsImportParams): ImporterOptions {
  if (!Number.isInteger(params.chunkSize) || params.chunkSize < 1 || params.chunkSize > MAX_CHUNK_SIZE) {
    throw new InvalidArgumentError(`chunk size must be between 1 and ${MAX_CHUNK_SIZE} bytes`)
  }
  return {
    cidVersion: params.cidVersion,
    rawLeaves: params.rawLeaves,
    chunker: fixedSize({ chunkSize: params.chunkSize }),
    layout: balanced({ maxChildrenPerNode: UNIXFS_MAX_LINKS }),
    reduceSingleLeafToSelf: true,
    wrapWithDirectory: params.wrapWithDirectory,
    leafType: 'file',
    fieldOrder: 'links-first',
    shardSplitStrategy: 'links-bytes',
  }
}

/** Kubo's `chunker` option: only fixed sizes, `size-N` (the size is checked by kuboImporterOptions). */
export function parseChunker(chunker: string | undefined): number {
  if (chunker === undefined || chunker === '') return UNIXFS_CHUNK_SIZE
  const m = /^size-(\d+)$/.exec(chunker)
  if (m === null) {
    throw new InvalidArgumentError(
      `chunker "${chunker}" is not supported; use size-N (default size-${UNIXFS_CHUNK_SIZE})`,
    )
  }
  return Number(m[1])
}

/** Import parameters from typed options, with Kubo's defaults (raw leaves follow the CID version). */
export function importParams(opts: {
  cidVersion?: number | undefined
  rawLeaves?: boolean | undefined
  chunker?: string | undefined
  wrapWithDirectory?: boolean | undefined
}): UnixfsImportParams {
  const v = opts.cidVersion ?? DEFAULT_IMPORT_PARAMS.cidVersion
  if (v !== 0 && v !== 1) throw new InvalidArgumentError(`cid-version must be 0 or 1 (got ${v})`)
  const params: UnixfsImportParams = {
    cidVersion: v,
    rawLeaves: opts.rawLeaves ?? v === 1,
    chunkSize: parseChunker(opts.chunker),
    wrapWithDirectory: opts.wrapWithDirectory ?? false,
  }
  kuboImporterOptions(params) // validates the combination now, before any byte is read
  return params
}
