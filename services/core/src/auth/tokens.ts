import { createHash, randomBytes } from 'node:crypto'
import { readFileSync, type Stats, unwatchFile, watchFile } from 'node:fs'
import { ConfigInvalidError, PermissionDeniedError, UnauthenticatedError } from '../errors.js'
import type { Logger } from '../logger.js'

/**
 * Bearer tokens with scopes, for the public APIs (the nodes' gRPC ApiService today, the gateway
 * later). Tokens are configured only as SHA-256 hashes in a file, so the file is not a secret
 * worth stealing; the client sends the token itself (`authorization: Bearer <token>`).
 *
 * File format, one token per line, `#` starts a comment:
 *
 *     # name   scopes        sha256 of the token, hex
 *     ci       read,write    4f6c…(64 hex digits)
 *     ops      admin         9a0b…
 *
 * Scopes: `read` (cat, stat, list, pin listing), `write` (add, pin, unpin), `admin` (everything,
 * including cluster status). `mycel token create` prints a new token and its line.
 */
export type Scope = 'read' | 'write' | 'admin'
export const SCOPES: readonly Scope[] = ['read', 'write', 'admin']

export interface ApiToken {
  name: string
  scopes: ReadonlySet<Scope>
  /** SHA-256 of the token, hex. */
  hash: string
}

/** SHA-256 of a token, hex: what the tokens file holds. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

/** A new random token (256 bits, base64url) with a recognisable prefix. */
export function createToken(): string {
  return `mycel_${randomBytes(32).toString('base64url')}`
}

/** The line of the tokens file for a token. */
export function tokenFileLine(name: string, scopes: readonly Scope[], token: string): string {
  return `${name} ${scopes.join(',')} ${hashToken(token)}`
}

/** Parses a tokens file; ConfigInvalidError lists every bad line. */
export function parseTokenFile(text: string, source = 'tokens file'): ApiToken[] {
  const tokens: ApiToken[] = []
  const issues: string[] = []
  const names = new Set<string>()
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim()
    if (line === '') return
    const where = `${source} line ${i + 1}`
    const fields = line.split(/\s+/)
    if (fields.length !== 3) {
      issues.push(`${where}: expected "NAME SCOPES SHA256", got ${fields.length} fields`)
      return
    }
    const [name, scopeText, hash] = fields as [string, string, string]
    if (!/^[A-Za-z0-9._@-]{1,64}$/.test(name)) {
      issues.push(`${where}: name "${name}" must be 1-64 letters, digits or ._@-`)
    } else if (names.has(name)) {
      issues.push(`${where}: name "${name}" appears twice`)
    }
    names.add(name)
    const scopes = scopeText.split(',')
    const unknown = scopes.filter((s) => !SCOPES.includes(s as Scope))
    if (unknown.length > 0) {
      issues.push(`${where}: unknown scope "${unknown.join(',')}" (scopes: ${SCOPES.join(', ')})`)
    }
    if (!/^[0-9a-fA-F]{64}$/.test(hash)) {
      issues.push(`${where}: the third field must be the token's SHA-256 in hex (64 digits)`)
    }
    tokens.push({ name, scopes: new Set(scopes as Scope[]), hash: hash.toLowerCase() })
  })
  if (issues.length > 0) throw new ConfigInvalidError(issues)
  return tokens
}

/** `admin` grants every scope. */
export function hasScope(token: ApiToken, scope: Scope): boolean {
  return token.scopes.has(scope) || token.scopes.has('admin')
}

/** The token of an `authorization` header value, or undefined when there is no bearer token. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(header ?? '')
  return m?.[1]
}

/** How often the tokens file is checked for changes. */
const RELOAD_INTERVAL_MS = 2_000

/**
 * Checks bearer tokens against a set of hashed tokens. From a file, the set is reloaded when the
 * file changes (a bad edit is logged and the previous set stays), so tokens can be added and
 * revoked without a restart.
 */
export class TokenAuthenticator {
  private byHash = new Map<string, ApiToken>()
  private readonly unwatch: () => void

  private constructor(tokens: readonly ApiToken[], file?: { path: string; log?: Logger | undefined }) {
    this.set(tokens)
    if (file === undefined) {
      this.unwatch = () => {}
      return
    }
    const onChange = (curr: Stats, prev: Stats) => {
      if (curr.mtimeMs === prev.mtimeMs && curr.size === prev.size) return
      try {
        this.set(parseTokenFile(readFileSync(file.path, 'utf8'), file.path))
        file.log?.info({ path: file.path, tokens: this.byHash.size }, 'API tokens reloaded')
      } catch (err) {
        file.log?.error(
          { path: file.path, err: (err as Error).message },
          'API tokens file changed but is not valid: keeping the previous tokens',
        )
      }
    }
    watchFile(file.path, { interval: RELOAD_INTERVAL_MS, persistent: false }, onChange)
    this.unwatch = () => unwatchFile(file.path, onChange)
  }

  static fromTokens(tokens: readonly ApiToken[]): TokenAuthenticator {
    return new TokenAuthenticator(tokens)
  }

  /** Reads the file now (ConfigInvalidError if it is missing or invalid) and follows its changes. */
  static fromFile(path: string, log?: Logger): TokenAuthenticator {
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (err) {
      throw new ConfigInvalidError([`MYCEL_API_TOKENS_FILE: cannot read ${path}: ${(err as Error).message}`])
    }
    return new TokenAuthenticator(parseTokenFile(text, path), { path, log })
  }

  get size(): number {
    return this.byHash.size
  }

  /**
   * The token an `authorization` header value carries, if it grants `scope`.
   * UnauthenticatedError without a known token, PermissionDeniedError without the scope.
   */
  authorize(authorization: string | undefined, scope: Scope): ApiToken {
    const presented = bearerToken(authorization)
    if (presented === undefined) {
      throw new UnauthenticatedError(
        authorization === undefined || authorization === ''
          ? 'this API requires a token: send "authorization: Bearer <token>"'
          : 'malformed authorization: expected "Bearer <token>"',
      )
    }
    const token = this.byHash.get(hashToken(presented))
    if (token === undefined) throw new UnauthenticatedError('unknown or revoked token')
    if (!hasScope(token, scope)) {
      throw new PermissionDeniedError(
        `token "${token.name}" lacks the "${scope}" scope (it has: ${[...token.scopes].join(', ')})`,
      )
    }
    return token
  }

  close(): void {
    this.unwatch()
  }

  private set(tokens: readonly ApiToken[]): void {
    this.byHash = new Map(tokens.map((t) => [t.hash, t]))
  }
}
