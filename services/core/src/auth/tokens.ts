import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { watchFiles } from '../config/watch-files.js'
import { ConfigInvalidError } from '../errors.js'
import type { Logger } from '../logger.js'

/**
 * What a bearer token allows. `read`: fetch content; `write`: store content and change pins;
 * `admin`: everything, including cluster status. Scopes are explicit: a write-only token (an
 * upload robot) cannot read, and a read token cannot write.
 */
export const SCOPES = ['read', 'write', 'admin'] as const
export type Scope = (typeof SCOPES)[number]

export interface TokenEntry {
  /** Who the token belongs to (logs and per-client limits; never the token itself). */
  name: string
  scopes: ReadonlySet<Scope>
}

/** The form tokens are stored in: lowercase hex SHA-256 of the whole token string. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

/** A new random token (256 bits); the prefix lets secret scanners recognise a leaked one. */
export function newToken(): string {
  return `mycel_${randomBytes(32).toString('base64url')}`
}

export function hasScope(entry: TokenEntry, scope: Scope): boolean {
  return entry.scopes.has(scope) || entry.scopes.has('admin')
}

/**
 * Parses a token file: one token per line, `SHA256HEX SCOPE[,SCOPE] NAME` (whitespace-separated;
 * `#` starts a comment line). Only hashes are stored, so the file grants nothing if it leaks.
 * Every bad line is reported with its number.
 */
export function parseTokenFile(text: string, source = 'token file'): Map<string, TokenEntry> {
  const tokens = new Map<string, TokenEntry>()
  const issues: string[] = []
  const names = new Set<string>()
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    const where = `${source} line ${i + 1}`
    const [hash = '', scopeList = '', name, ...rest] = line.split(/\s+/)
    if (name === undefined || rest.length > 0) {
      issues.push(`${where}: expected "SHA256HEX SCOPE[,SCOPE] NAME"`)
      return
    }
    if (!/^[0-9a-fA-F]{64}$/.test(hash)) {
      issues.push(`${where}: "${hash.slice(0, 16)}…" is not a hex SHA-256 (store the hash, never the token)`)
      return
    }
    const scopes = scopeList.split(',').filter((s) => s !== '')
    const unknown = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s))
    if (scopes.length === 0 || unknown.length > 0) {
      issues.push(
        `${where}: unknown scope "${unknown.join(',') || scopeList}" (scopes: ${SCOPES.join(', ')})`,
      )
      return
    }
    if (tokens.has(hash.toLowerCase())) issues.push(`${where}: the same token hash appears twice`)
    if (names.has(name)) issues.push(`${where}: the name "${name}" is used twice`)
    names.add(name)
    tokens.set(hash.toLowerCase(), { name, scopes: new Set(scopes as Scope[]) })
  })
  if (issues.length > 0) throw new ConfigInvalidError(issues)
  return tokens
}

/**
 * The tokens of a file, reloaded when it changes (adding or revoking a token needs no restart).
 * A changed file that does not parse is logged and ignored: the previous tokens stay in force.
 */
export class TokenStore {
  private tokens: Map<string, TokenEntry>
  private text: string
  private stopWatching: () => void = () => {}

  private constructor(
    readonly file: string | undefined,
    private readonly log: Logger | undefined,
    text: string,
  ) {
    this.text = text
    this.tokens = parseTokenFile(text, file)
  }

  /** Reads the file (ConfigInvalidError if unreadable or invalid) and watches it. */
  static load(file: string, log?: Logger, reloadIntervalMs = 10_000): TokenStore {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (err) {
      throw new ConfigInvalidError([
        `MYCEL_TOKENS_FILE: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      ])
    }
    const store = new TokenStore(file, log, text)
    store.stopWatching = watchFiles([file], reloadIntervalMs, () => store.reload())
    return store
  }

  /** Tokens given directly (tests, or a process without a file). */
  static of(text: string): TokenStore {
    return new TokenStore(undefined, undefined, text)
  }

  get size(): number {
    return this.tokens.size
  }

  lookup(token: string): TokenEntry | undefined {
    return this.tokens.get(hashToken(token))
  }

  /** Re-reads the file; returns whether the tokens changed. */
  reload(): boolean {
    if (this.file === undefined) return false
    let text: string
    try {
      text = readFileSync(this.file, 'utf8')
      if (text === this.text) return false
      this.tokens = parseTokenFile(text, this.file)
    } catch (err) {
      this.log?.error(
        { err: (err as Error).message },
        'token file changed but is not valid: keeping the previous tokens',
      )
      return false
    }
    this.text = text
    this.log?.info({ tokens: this.tokens.size }, 'token file reloaded')
    return true
  }

  close(): void {
    this.stopWatching()
  }
}

/** The token of an `Authorization: Bearer TOKEN` header; undefined without one. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(header)
  return m?.[1]
}
