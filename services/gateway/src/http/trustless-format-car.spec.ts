import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Request } from 'express'
import { negotiate } from './trustless.js'

function req(query: Record<string, string>, accept?: string): Request {
  return { query, headers: accept === undefined ? {} : { accept } } as unknown as Request
}

describe('negotiate: ?format=car with CAR parameters in Accept', () => {
  it('takes order and dups from an Accept CAR media range when ?format=car picks CAR', () => {
    const r = negotiate(req({ format: 'car' }, 'application/vnd.ipld.car; version=1; order=dfs; dups=y'))
    assert.equal(r?.format, 'car')
    assert.equal(r?.format === 'car' && r.dups, true)
    // car-dups in the query still wins over the Accept parameter.
    const q = negotiate(req({ format: 'car', 'car-dups': 'n' }, 'application/vnd.ipld.car; dups=y'))
    assert.equal(q?.format === 'car' && q.dups, false)
    // Without a CAR media range the defaults apply.
    const d = negotiate(req({ format: 'car' }, 'text/html'))
    assert.equal(d?.format === 'car' && d.dups, false)
  })
})
