import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseRange } from './range.js'

describe('parseRange', () => {
  it('ignores absent, foreign-unit, malformed and multi-range headers', () => {
    assert.equal(parseRange(undefined, 10), undefined)
    assert.equal(parseRange('items=0-1', 10), undefined)
    assert.equal(parseRange('bytes=abc', 10), undefined)
    assert.equal(parseRange('bytes=5-2', 10), undefined)
    assert.equal(parseRange('bytes=0-1,4-5', 10), undefined)
  })
  it('parses start-end, open-ended and suffix ranges, clamped to the size', () => {
    assert.deepEqual(parseRange('bytes=0-0', 10), { start: 0, end: 0 })
    assert.deepEqual(parseRange('bytes=2-5', 10), { start: 2, end: 5 })
    assert.deepEqual(parseRange('bytes=7-', 10), { start: 7, end: 9 })
    assert.deepEqual(parseRange('bytes=7-100', 10), { start: 7, end: 9 })
    assert.deepEqual(parseRange('bytes=-3', 10), { start: 7, end: 9 })
    assert.deepEqual(parseRange('bytes=-30', 10), { start: 0, end: 9 })
  })
  it('rejects unsatisfiable ranges', () => {
    assert.throws(() => parseRange('bytes=10-', 10), { code: 'RANGE_NOT_SATISFIABLE' })
    assert.throws(() => parseRange('bytes=10-20', 10), { code: 'RANGE_NOT_SATISFIABLE' })
    assert.throws(() => parseRange('bytes=-0', 10), { code: 'RANGE_NOT_SATISFIABLE' })
    assert.throws(() => parseRange('bytes=0-', 0), { code: 'RANGE_NOT_SATISFIABLE' })
  })
})
