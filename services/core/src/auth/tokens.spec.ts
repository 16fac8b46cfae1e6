import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { bearerToken, hashToken, hasScope, newToken, parseTokenFile, TokenStore } from './tokens.js'

describe('bearer tokens', () => {
  it('stores only hashes and finds a token by its hash', () => {
    const token = newToken()
    assert.match(token, /^mycel_[A-Za-z0-9_-]{43}$/)
    const store = TokenStore.of(`# comment\n\n${hashToken(token)} read,write ci\n`)
    assert.equal(store.size, 1)
    const entry = store.lookup(token)
    assert.equal(entry?.name, 'ci')
    assert.ok(entry && hasScope(entry, 'read') && hasScope(entry, 'write') && !hasScope(entry, 'admin'))
    assert.equal(store.lookup(newToken()), undefined)
    assert.equal(store.lookup(hashToken(token)), undefined, 'the hash itself is not a token')
  })

  it('admin implies every scope; other scopes are explicit', () => {
    const admin = { name: 'a', scopes: new Set(['admin'] as const) }
    const writer = { name: 'w', scopes: new Set(['write'] as const) }
    assert.ok(hasScope(admin, 'read') && hasScope(admin, 'write'))
    assert.ok(!hasScope(writer, 'read'))
  })

  it('reports every bad line with its number', () => {
    const h = hashToken('x')
    assert.throws(
      () =>
        parseTokenFile(
          [
            `${h} read a`,
            'mycel_plaintext read b',
            `${h.slice(2)}ab write,root c`,
            `${hashToken('y')} read a`,
            `${h}`,
          ].join('\n'),
          'tokens',
        ),
      (err: unknown) => {
        const issues = (err as { issues: string[] }).issues
        assert.deepEqual(
          issues.map((i) => i.split(':')[0]),
          ['tokens line 2', 'tokens line 3', 'tokens line 4', 'tokens line 5'],
        )
        assert.match(issues[0] ?? '', /not a hex SHA-256 \(store the hash, never the token\)/)
        assert.match(issues[1] ?? '', /unknown scope "root"/)
        assert.match(issues[2] ?? '', /name "a" is used twice/)
        return true
      },
    )
  })

  it('reads the Authorization header', () => {
    assert.equal(bearerToken('Bearer abc'), 'abc')
    assert.equal(bearerToken('bearer   abc '), 'abc')
    assert.equal(bearerToken('Basic dXNlcjpwYXNz'), undefined)
    assert.equal(bearerToken('Bearer a b'), undefined)
    assert.equal(bearerToken(undefined), undefined)
  })
})
