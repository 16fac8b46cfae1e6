import { bearerToken, type Scope, type TokenEntry, type TokenStore } from '@mycel/core'

/** What a request needs: nothing (probes, metrics, the API description) or a token scope. */
export type Requirement = 'open' | Scope

/** Answered to anyone: probes, metrics, the API description, CORS preflights. */
const OPEN_PATHS = new Set([
  '/healthz',
  '/readyz',
  '/metrics',
  '/mycel/v1/openapi.yaml',
  '/mycel/v1/openapi.json',
])

/** Kubo RPC commands that only read content. */
const READ_COMMANDS = new Set([
  'cat',
  'get',
  'ls',
  'block/get',
  'block/stat',
  'dag/export',
  'pin/ls',
  'version',
  'id',
])

/** Kubo RPC commands that store content or change pins. */
const WRITE_COMMANDS = new Set(['add', 'block/put', 'dag/import', 'pin/add', 'pin/rm', 'pin/update'])

/**
 * The scope a request needs, from its method and path. Paths are compared as the router matches
 * them (case-insensitive, trailing slashes ignored), and anything not listed needs `admin`, so a
 * route added later is closed until it is classified here.
 */
export function requiredScope(method: string, rawPath: string): Requirement {
  const path = rawPath.toLowerCase().replace(/\/+$/, '') || '/'
  if (OPEN_PATHS.has(path)) return 'open'
  if (path === '/ipfs' || path.startsWith('/ipfs/')) return method === 'OPTIONS' ? 'open' : 'read'
  if (path.startsWith('/api/v0/')) {
    const command = path.slice('/api/v0/'.length)
    if (READ_COMMANDS.has(command)) return 'read'
    if (WRITE_COMMANDS.has(command)) return 'write'
    return 'admin'
  }
  if (path === '/mycel/v1/upload') return 'write'
  return 'admin'
}

/** Who sent a request: a known token, nobody, or credentials that are not valid. */
export type Caller =
  | { kind: 'token'; token: TokenEntry }
  | { kind: 'anonymous' }
  | { kind: 'invalid'; reason: string }

export function identify(authorization: string | undefined, tokens: TokenStore | undefined): Caller {
  if (authorization === undefined) return { kind: 'anonymous' }
  const token = bearerToken(authorization)
  if (token === undefined) return { kind: 'invalid', reason: 'use "Authorization: Bearer TOKEN"' }
  const entry = tokens?.lookup(token)
  return entry === undefined ? { kind: 'invalid', reason: 'unknown token' } : { kind: 'token', token: entry }
}
