import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { contentDisposition, contentTypeOf, sniffText } from './content-type.js'

describe('content-type', () => {
  it('prefers a known extension, then magic numbers, then WHATWG text rules', async () => {
    assert.equal(await contentTypeOf('a.txt', new Uint8Array([0]), 1), 'text/plain; charset=utf-8')
    const gif = Buffer.from('GIF89a\x01\x00\x01\x00', 'latin1')
    assert.equal(await contentTypeOf('noext', gif, gif.length), 'image/gif')
    assert.equal(await contentTypeOf(undefined, Buffer.from('hello\n'), 6), 'text/plain; charset=utf-8')
    assert.equal(sniffText(Buffer.from('\n <!DOCTYPE html><p>'), 20), 'text/html; charset=utf-8')
    assert.equal(sniffText(Buffer.from('<abc>'), 5), 'text/plain; charset=utf-8')
    assert.equal(sniffText(Buffer.from([1, 2, 3]), 3), 'application/octet-stream')
    assert.equal(sniffText(Buffer.from('{ "a": 1 }\n'), 11), 'application/json')
    // Only a whole file is parsed as JSON.
    assert.equal(sniffText(Buffer.from('{ "a": 1 }\n'), 5000), 'text/plain; charset=utf-8')
  })

  it('Content-Disposition: plain for ASCII, RFC 5987 filename* otherwise', () => {
    assert.equal(contentDisposition('inline', 'a b.txt'), 'inline; filename="a b.txt"')
    assert.equal(
      contentDisposition('attachment', 'ą"(1).txt'),
      `attachment; filename="__(1).txt"; filename*=UTF-8''%C4%85%22%281%29.txt`,
    )
  })
})
