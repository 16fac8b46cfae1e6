import {
  DEFAULT_IMPORT_PARAMS,
  type Durability,
  InvalidArgumentError,
  parseChunker,
  parseDurabilityOption as parseDurabilityText,
  type UnixfsImportParams,
} from '@mycel/core'

export type Query = Record<string, unknown>

/** A single string value of a query parameter (the last one wins, as in Kubo). */
export function queryValue(query: Query, name: string): string | undefined {
  const v = query[name]
  if (Array.isArray(v)) return v.length > 0 ? String(v[v.length - 1]) : undefined
  return v === undefined ? undefined : String(v)
}

/** Kubo's boolean options: "true"/"false", "1"/"0"; present without a value means true. */
export function queryBool(query: Query, name: string, fallback: boolean): boolean {
  const v = queryValue(query, name)
  if (v === undefined) return fallback
  if (v === '' || v === 'true' || v === '1') return true
  if (v === 'false' || v === '0') return false
  throw new InvalidArgumentError(`option "${name}" must be true or false (got "${v}")`)
}

/** Rejects options this endpoint does not know, so none is silently ignored. */
export function rejectUnknownOptions(query: Query, known: ReadonlySet<string>, endpoint: string): void {
  for (const name of Object.keys(query)) {
    if (!known.has(name)) throw new InvalidArgumentError(`${endpoint}: unknown option "${name}"`)
  }
  // Sent by Kubo clients and otherwise ignored, but still checked: a bad value is an error.
  queryBool(query, 'stream-channels', false)
}

export type { Durability }

/**
 * The upload's `durability=replicate:R|ec:K+M` option (core's parser: the gRPC API and the CLI
 * use the same one). Whether the cluster has the nodes for it is checked when the upload's write
 * session starts, against the membership of that moment.
 */
export function parseDurabilityOption(query: Query): { durability?: Durability } {
  const durability = parseDurabilityText(queryValue(query, 'durability'))
  return durability === undefined ? {} : { durability }
}

/** Kubo's import options: cid-version, raw-leaves, chunker=size-N, wrap-with-directory, hash. */
export function parseImportParams(query: Query): UnixfsImportParams {
  const cidVersionText = queryValue(query, 'cid-version')
  let cidVersion = DEFAULT_IMPORT_PARAMS.cidVersion
  if (cidVersionText !== undefined) {
    if (cidVersionText !== '0' && cidVersionText !== '1') {
      throw new InvalidArgumentError(`cid-version must be 0 or 1 (got "${cidVersionText}")`)
    }
    cidVersion = Number(cidVersionText) as 0 | 1
  }
  const rawLeaves = queryBool(query, 'raw-leaves', cidVersion === 1)
  const chunkSize = parseChunker(queryValue(query, 'chunker'))
  const hash = queryValue(query, 'hash')
  if (hash !== undefined && hash !== 'sha2-256') {
    throw new InvalidArgumentError(`hash "${hash}" is not supported; Mycel adds with sha2-256`)
  }
  return {
    cidVersion,
    rawLeaves,
    chunkSize,
    wrapWithDirectory: queryBool(query, 'wrap-with-directory', false),
  }
}
