import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Request } from 'express'
import { negotiate, resolveEntityBytes } from './trustless.js'

function req(query: Record<string, string>, accept?: string): Request {
  return { query, headers: accept === undefined ? {} : { accept } } as unknown as Request
}

describe('negotiate (trustless response format)', () => {
  it('answers deserialized content when neither format nor a verifiable Accept is asked for', () => {
    assert.equal(negotiate(req({})), undefined)
    assert.equal(negotiate(req({}, 'text/html,application/xhtml+xml,*/*;q=0.8')), undefined)
  })
  it('lets ?format= win over Accept, and honours Accept q-values', () => {
    assert.deepEqual(negotiate(req({ format: 'raw' }, 'application/vnd.ipld.car')), { format: 'raw' })
    assert.equal(
      negotiate(req({}, 'application/vnd.ipld.raw;q=0.5, application/vnd.ipld.car'))?.format,
      'car',
    )
    assert.equal(negotiate(req({}, 'application/vnd.ipld.car;q=0, application/vnd.ipld.raw'))?.format, 'raw')
  })
  it('names the path gateway formats by ?format= or Accept', () => {
    assert.deepEqual(negotiate(req({}, 'application/x-tar')), { format: 'tar' })
    assert.deepEqual(negotiate(req({ format: 'dag-json' }, 'application/vnd.ipld.raw')), {
      format: 'dag-json',
    })
    assert.deepEqual(negotiate(req({}, 'text/html, application/vnd.ipld.dag-cbor')), { format: 'dag-cbor' })
    assert.deepEqual(negotiate(req({}, 'application/json')), { format: 'json' })
    assert.deepEqual(negotiate(req({ format: 'cbor' })), { format: 'cbor' })
  })
  it('reads CAR parameters from Accept, with car-* query parameters taking precedence', () => {
    assert.deepEqual(negotiate(req({}, 'application/vnd.ipld.car; version=1; order=unk; dups=y')), {
      format: 'car',
      scope: 'all',
      dups: true,
      order: 'dfs',
    })
    assert.deepEqual(
      negotiate(req({ 'car-dups': 'n', 'dag-scope': 'entity' }, 'application/vnd.ipld.car; dups=y')),
      {
        format: 'car',
        scope: 'entity',
        dups: false,
        order: 'dfs',
      },
    )
  })
  it('refuses what it cannot serve, by name', () => {
    assert.throws(
      () => negotiate(req({ 'car-version': '2', format: 'car' })),
      /CAR version 2 is not supported/,
    )
    assert.throws(() => negotiate(req({ format: 'ipns-record' })), /IPNS records are not served/)
    assert.throws(() => negotiate(req({ format: 'zip' })), /unknown format "zip"/)
    assert.throws(() => negotiate(req({ 'dag-scope': 'all' })), /applies only to CAR responses/)
  })
  it('resolves entity-bytes against the file size, as inclusive offsets', () => {
    const e = (from: number, to: number | undefined) => ({ from, to, text: '' })
    assert.deepEqual(resolveEntityBytes(e(0, undefined), 100), { from: 0, to: 99 })
    assert.deepEqual(resolveEntityBytes(e(10, 500), 100), { from: 10, to: 99 })
    assert.deepEqual(resolveEntityBytes(e(-10, undefined), 100), { from: 90, to: 99 })
    assert.deepEqual(resolveEntityBytes(e(-1000, -50), 100), { from: 0, to: 50 })
    assert.equal(resolveEntityBytes(e(100, undefined), 100), undefined)
    assert.equal(resolveEntityBytes(e(50, -60), 100), undefined)
    assert.equal(resolveEntityBytes(e(0, undefined), 0), undefined)
  })
})
