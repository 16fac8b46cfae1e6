import {
  bearerToken,
  hashToken,
  PermissionDeniedError,
  type Scope,
  type TokenAuthenticator,
  UnauthenticatedError,
} from '@mycel/core'

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
  'repo/stat',
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

/**
 * The decision on one request: the key its per-client limits count under (the token's name,
 * else the caller's address) and, when it may not proceed, why.
 */
export interface AccessDecision {
  key: string
  refusal?: UnauthenticatedError | PermissionDeniedError
}

/**
 * Authorises a request that needs `need` with the bearer token in its Authorization header.
 * Public reads need no token, and a token that cannot read may still read what is public; a
 * token that is not valid is refused even there. Unknown tokens count under the caller's address,
 * so cycling made-up tokens does not escape the per-address limits.
 */
export function decideAccess(
  authorization: string | undefined,
  need: Scope,
  publicReads: boolean,
  tokens: TokenAuthenticator,
  address: string,
): AccessDecision {
  const publicRead = need === 'read' && publicReads
  if (publicRead && authorization === undefined) return { key: address }
  try {
    return { key: `token:${tokens.authorize(authorization, need).name}` }
  } catch (err) {
    if (err instanceof PermissionDeniedError) {
      // A known token: its limits are its own (keyed by its hash, which is not a secret).
      const key = `token:${hashToken(bearerToken(authorization) ?? '')}`
      return publicRead ? { key } : { key, refusal: err }
    }
    if (err instanceof UnauthenticatedError) return { key: address, refusal: err }
    throw err
  }
}
