import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { kuboAdd } from '../helpers/http.js'

const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489', 'hex')

/** Path gateway behaviour of the IPFS HTTP Gateway spec beyond plain file streaming. */
describe('path gateway: roots, index.html, sniffing, Content-Disposition, redirects, CORS', () => {
  let cluster: TestCluster
  let url: string
  let root: string
  let cids: Map<string, string>
  before(async () => {
    cluster = await startCluster({ nodes: 3 })
    url = cluster.gatewayUrl
    const { status, lines, text } = await kuboAdd(
      url,
      [
        { name: 'site/index.html', bytes: Buffer.from('<!doctype html><h1>home</h1>\n') },
        { name: 'site/sub/a.txt', bytes: Buffer.from('aaa\n') },
        { name: 'pics/picture', bytes: PNG },
        { name: 'pics/notes', bytes: Buffer.from('just some text\n') },
        { name: 'pics/blob', bytes: Buffer.from([0, 1, 2, 3, 250, 251]) },
        { name: 'pics/page', bytes: Buffer.from('  <html><body>hi</body></html>') },
        { name: 'ą/ę/f.txt', bytes: Buffer.from('ę\n') },
      ],
      '?wrap-with-directory=true',
    )
    assert.equal(status, 200, text)
    cids = new Map(lines.map((l) => [l.Name as string, l.Hash as string]))
    root = cids.get('') as string
    assert.ok(root)
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('X-Ipfs-Roots lists the CID of every node along the path', async () => {
    const res = await fetch(`${url}/ipfs/${root}/site/sub/a.txt`)
    assert.equal(res.status, 200)
    assert.equal(
      res.headers.get('x-ipfs-roots'),
      [root, cids.get('site'), cids.get('site/sub'), cids.get('site/sub/a.txt')].join(','),
    )
    assert.equal(res.headers.get('x-ipfs-path'), `/ipfs/${root}/site/sub/a.txt`)
    assert.equal(await res.text(), 'aaa\n')
    const raw = await fetch(`${url}/ipfs/${root}/site?format=raw`)
    assert.equal(raw.headers.get('x-ipfs-roots'), [root, cids.get('site')].join(','))
  })

  it('a directory without a trailing slash redirects (query kept); with one it serves its index.html', async () => {
    const redirect = await fetch(`${url}/ipfs/${root}/site?x=1`, { redirect: 'manual' })
    assert.equal(redirect.status, 301)
    assert.equal(redirect.headers.get('location'), `/ipfs/${root}/site/?x=1`)
    const unicode = await fetch(`${url}/ipfs/${root}/%C4%85/%C4%99`, { redirect: 'manual' })
    assert.equal(unicode.status, 301)
    assert.equal(unicode.headers.get('location'), `/ipfs/${root}/%C4%85/%C4%99/`)
    const res = await fetch(`${url}/ipfs/${root}/site/`)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/)
    assert.equal(res.headers.get('etag'), `"${cids.get('site')}"`)
    assert.equal(res.headers.get('cache-control'), 'public, max-age=29030400, immutable')
    assert.equal(res.headers.get('x-ipfs-roots'), [root, cids.get('site')].join(','))
    assert.equal(await res.text(), '<!doctype html><h1>home</h1>\n')
    const again = await fetch(`${url}/ipfs/${root}/site/`, {
      headers: { 'If-None-Match': `"${cids.get('site')}"` },
    })
    assert.equal(again.status, 304)
  })

  it('a directory without index.html gets a listing with a DirIndex ETag and a shorter cache', async () => {
    const res = await fetch(`${url}/ipfs/${root}/pics/`)
    assert.equal(res.status, 200)
    const etag = res.headers.get('etag') ?? ''
    assert.match(etag, new RegExp(`^"DirIndex-.*_CID-${cids.get('pics')}"$`))
    assert.equal(res.headers.get('cache-control'), 'public, max-age=604800, stale-while-revalidate=2678400')
    const html = await res.text()
    assert.match(html, new RegExp(`href="/ipfs/${root}/pics/picture"`))
    assert.ok(
      html.includes(`/ipfs/<a href="/ipfs/${root}">${root}</a>/<a href="/ipfs/${root}/pics">pics</a>`),
    )
    assert.ok(html.includes(`<a href="/ipfs/${root}/pics/..">..</a>`))
    assert.match(html, new RegExp(`href="/ipfs/${cids.get('pics/notes')}\\?filename=notes"`))
    const cached = await fetch(`${url}/ipfs/${root}/pics/`, { headers: { 'If-None-Match': etag } })
    assert.equal(cached.status, 304)
  })

  it('sniffs the Content-Type of files without a known extension', async () => {
    const expect: Array<[string, RegExp]> = [
      ['pics/picture', /^image\/png$/],
      ['pics/notes', /^text\/plain; charset=utf-8$/],
      ['pics/blob', /^application\/octet-stream$/],
      ['pics/page', /^text\/html/],
      ['site/sub/a.txt', /^text\/plain/],
    ]
    for (const [path, type] of expect) {
      const res = await fetch(`${url}/ipfs/${root}/${path}`, { method: 'HEAD' })
      assert.equal(res.status, 200, path)
      assert.match(res.headers.get('content-type') ?? '', type, path)
    }
    // ?filename= names the file, so its extension decides.
    const named = await fetch(`${url}/ipfs/${cids.get('pics/notes')}?filename=x.json`, { method: 'HEAD' })
    assert.match(named.headers.get('content-type') ?? '', /^application\/json/)
  })

  it('?filename= and ?download=true set Content-Disposition, non-ASCII names per RFC 5987', async () => {
    const cid = cids.get('pics/notes')
    const inline = await fetch(`${url}/ipfs/${cid}?filename=notes.txt`)
    assert.equal(inline.headers.get('content-disposition'), 'inline; filename="notes.txt"')
    const attach = await fetch(`${url}/ipfs/${cid}?filename=notes.txt&download=true`)
    assert.equal(attach.headers.get('content-disposition'), 'attachment; filename="notes.txt"')
    const name = 'żółć 数据.txt'
    const unicode = await fetch(`${url}/ipfs/${cid}?filename=${encodeURIComponent(name)}&download=true`)
    assert.equal(
      unicode.headers.get('content-disposition'),
      `attachment; filename="____ __.txt"; filename*=UTF-8''${encodeURIComponent(name)}`,
    )
    const plain = await fetch(`${url}/ipfs/${cid}`)
    assert.equal(plain.headers.get('content-disposition'), null)
  })

  it('answers CORS preflights and sets CORS headers on responses', async () => {
    const pre = await fetch(`${url}/ipfs/${root}/`, { method: 'OPTIONS' })
    assert.equal(pre.status, 200)
    assert.equal(pre.headers.get('access-control-allow-origin'), '*')
    assert.match(pre.headers.get('access-control-allow-methods') ?? '', /OPTIONS/)
    const res = await fetch(`${url}/ipfs/${cids.get('pics/notes')}`)
    assert.equal(res.headers.get('access-control-allow-origin'), '*')
    assert.match(res.headers.get('access-control-expose-headers') ?? '', /X-Ipfs-Roots/)
  })

  it('Cache-Control: only-if-cached gives 412 for content the cluster does not hold', async () => {
    const missing = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
    const headers = { 'Cache-Control': 'only-if-cached' }
    assert.equal((await fetch(`${url}/ipfs/${missing}`, { headers })).status, 412)
    assert.equal((await fetch(`${url}/ipfs/${missing}`, { method: 'HEAD', headers })).status, 412)
    assert.equal((await fetch(`${url}/ipfs/${cids.get('pics/notes')}`, { headers })).status, 200)
    assert.equal((await fetch(`${url}/ipfs/${missing}`)).status, 404)
  })

  it('a path below a file names nothing: 404 as Kubo, never a server error', async () => {
    const file = cids.get('pics/notes') as string
    const raw = (await kuboAdd(url, [{ name: 'r', bytes: Buffer.from('r') }], '?cid-version=1')).lines[0]
      ?.Hash as string
    for (const path of [`${file}/0`, `${file}/a/b`, `${root}/pics/notes/x`, `${raw}/x`]) {
      for (const method of ['GET', 'HEAD']) {
        const res = await fetch(`${url}/ipfs/${path}`, { method })
        assert.equal(res.status, 404, `${method} ${path}`)
        if (method === 'GET') assert.match(await res.text(), /no link named/, path)
      }
    }
  })

  it('serves a UnixFS symlink as its target text', async () => {
    const put = async (bytes: Uint8Array) => {
      const form = new FormData()
      form.append('file', new Blob([bytes]))
      const res = await fetch(`${url}/api/v0/block/put?cid-codec=dag-pb`, { method: 'POST', body: form })
      assert.equal(res.status, 200)
      return CID.parse(((await res.json()) as { Key: string }).Key)
    }
    const link = await put(
      dagPb.encode({ Data: new UnixFS({ type: 'symlink', data: Buffer.from('foo') }).marshal(), Links: [] }),
    )
    const dir = await put(
      dagPb.encode(
        dagPb.prepare({
          Data: new UnixFS({ type: 'directory' }).marshal(),
          Links: [{ Name: 'bar', Hash: link, Tsize: 10 }],
        }),
      ),
    )
    const res = await fetch(`${url}/ipfs/${dir}/bar`)
    assert.equal(res.status, 200)
    assert.equal(await res.text(), 'foo')
  })
})
