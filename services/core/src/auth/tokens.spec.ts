import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ConfigInvalidError } from '../errors.js'
import {
  bearerToken,
  createToken,
  hashToken,
  parseTokenFile,
  TokenAuthenticator,
  tokenFileLine,
} from './tokens.js'

describe('API tokens', () => {
  const a = createToken()
  const b = createToken()
  const text = `# comment\n${tokenFileLine('ci', ['read', 'write'], a)}\n\n${tokenFileLine('ops', ['admin'], b)} # trailing\n`

  it('parses names, scopes and hashes; the file never holds the token', () => {
    const tokens = parseTokenFile(text)
    assert.deepEqual(
      tokens.map((t) => [t.name, [...t.scopes], t.hash]),
      [
        ['ci', ['read', 'write'], hashToken(a)],
        ['ops', ['admin'], hashToken(b)],
      ],
    )
    assert.ok(!text.includes(a))
  })

  it('lists every bad line at once', () => {
    const bad = 'x read\ny root 00\ny read zz\n'
    assert.throws(
      () => parseTokenFile(bad, 'tokens'),
      (err: unknown) => {
        assert.ok(err instanceof ConfigInvalidError)
        assert.equal(err.issues.length, 5)
        assert.match(err.issues[0] ?? '', /tokens line 1: expected "NAME SCOPES SHA256"/)
        assert.match(err.issues.join('\n'), /unknown scope "root"/)
        assert.match(err.issues.join('\n'), /appears twice/)
        return true
      },
    )
  })

  it('authorizes by scope; admin has every scope', () => {
    const auth = TokenAuthenticator.fromTokens(parseTokenFile(text))
    assert.equal(auth.authorize(`Bearer ${a}`, 'write').name, 'ci')
    assert.equal(auth.authorize(`bearer  ${b} `, 'read').name, 'ops')
    assert.throws(() => auth.authorize(`Bearer ${a}`, 'admin'), { code: 'PERMISSION_DENIED' })
    assert.throws(() => auth.authorize(undefined, 'read'), { code: 'UNAUTHENTICATED' })
    assert.throws(() => auth.authorize(`Basic ${a}`, 'read'), {
      code: 'UNAUTHENTICATED',
      message: /malformed/,
    })
    assert.throws(() => auth.authorize(`Bearer ${a}x`, 'read'), {
      code: 'UNAUTHENTICATED',
      message: /unknown/,
    })
    assert.equal(bearerToken('Bearer abc'), 'abc')
  })
})
