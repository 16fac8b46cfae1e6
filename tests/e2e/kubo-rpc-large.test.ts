import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream, openAsBlob } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { after, before, describe, it } from 'node:test'
import { CarBlockIterator } from '@ipld/car/iterator'
import { startCluster, TEST_TMP, type TestCluster } from '../helpers/cluster.js'
import { writeDeterministicFile } from '../helpers/data.js'
import { rawUpload } from '../helpers/http.js'

const SIZE = 128 * 1024 * 1024

/** Samples the gateway's resident memory (its Prometheus metric) until stopped; returns the peak. */
function sampleRss(url: string): { stop: () => Promise<number> } {
  let peak = 0
  let running = true
  const loop = (async () => {
    while (running) {
      const text = await (await fetch(`${url}/metrics`)).text()
      const m = /^mycel_gateway_process_resident_memory_bytes (\d+)/m.exec(text)
      if (m) peak = Math.max(peak, Number(m[1]))
      await new Promise((r) => setTimeout(r, 50))
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      return peak
    },
  }
}

/** dag/export and dag/import of a DAG larger than any buffer the gateway may hold. */
describe('Kubo RPC dag export/import at scale (128 MiB)', () => {
  let cluster: TestCluster
  let dir: string
  let root: string
  before(async () => {
    cluster = await startCluster({ nodes: 3 })
    dir = await mkdtemp(join(TEST_TMP, 'car-large-'))
    await writeDeterministicFile(join(dir, 'in.bin'), SIZE, 'car-large')
    const up = await rawUpload(cluster.gatewayUrl, join(dir, 'in.bin'))
    assert.equal(up.status, 201, up.text)
    root = up.body.cid as string
  })
  after(async () => {
    await cluster?.destroy()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('streams the export and the import without holding the CAR in memory', async () => {
    const url = cluster.gatewayUrl
    const base = await sampleRss(url).stop()
    const exportRss = sampleRss(url)
    const res = await fetch(`${url}/api/v0/dag/export?arg=${root}`, { method: 'POST' })
    assert.equal(res.status, 200)
    const carPath = join(dir, 'out.car')
    await pipeline(Readable.fromWeb(res.body as never), createWriteStream(carPath))
    const exportPeak = await exportRss.stop()

    let blocks = 0
    let bytes = 0
    for await (const b of await CarBlockIterator.fromIterable(createReadStream(carPath))) {
      const digest = createHash('sha256').update(b.bytes).digest()
      assert.ok(digest.equals(Buffer.from(b.cid.multihash.digest)), `block ${b.cid} verifies`)
      blocks++
      bytes += b.bytes.length
    }
    // 512 leaves of 256 KiB, 3 intermediate nodes and the root (balanced, 174 links per node).
    assert.equal(blocks, 512 + 3 + 1)
    assert.ok(bytes > SIZE)

    const importRss = sampleRss(url)
    const form = new FormData()
    // openAsBlob reads the file lazily while the body is sent.
    form.append('file', await openAsBlob(carPath), 'out.car')
    const imported = await fetch(`${url}/api/v0/dag/import?stats=true`, { method: 'POST', body: form })
    const text = await imported.text()
    const importPeak = await importRss.stop()
    assert.equal(imported.status, 200, text)
    const lines = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    assert.deepEqual(lines[0], { Root: { Cid: { '/': root }, PinErrorMsg: '' } })
    assert.equal(lines[1].Stats.BlockCount, blocks)
    const mib = (n: number) => Math.round(n / 1048576)
    console.log(
      `gateway RSS MiB: base ${mib(base)}, export peak ${mib(exportPeak)}, import peak ${mib(importPeak)}`,
    )
    // Buffering the CAR would add its 128 MiB; streaming adds block buffers and allocator slack.
    assert.ok(exportPeak - base < 96 * 1048576, `export grew RSS by ${mib(exportPeak - base)} MiB`)
    assert.ok(importPeak - base < 96 * 1048576, `import grew RSS by ${mib(importPeak - base)} MiB`)
  })
})
