import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { MycelClient } from '@mycel/sdk'
import { peakRss } from '../helpers/api.js'
import { startCluster, type TestCluster } from '../helpers/cluster.js'

const GiB = 1024 ** 3
const MiB = 1024 ** 2

/**
 * A 1 GiB add and cat through the public API, streamed both ways: neither the client nor any node
 * may hold the file. Memory bounds are generous (RocksDB memtables and the write path's in-flight
 * blocks dominate a node); a design that buffered the file would need more than 1 GiB.
 */
describe('1 GiB streamed through the SDK with bounded memory (3 nodes)', () => {
  let cluster: TestCluster
  let sdk: MycelClient
  let peak = 0
  let sampler: NodeJS.Timeout
  before(async () => {
    cluster = await startCluster({ nodes: 3, readyTimeoutMs: 120_000 })
    sdk = new MycelClient({ nodes: [cluster.nodeAddress(0)] })
    sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage.rss())
    }, 100)
  })
  after(async () => {
    clearInterval(sampler)
    sdk?.close()
    await cluster?.destroy()
  })

  it('adds 1 GiB from a stream, reads it back whole, and no process holds it', async () => {
    // 1 MiB of random bytes, varied per chunk (its index in the first bytes) so no block repeats.
    const base = randomBytes(MiB)
    const hash = createHash('sha256')
    const source = (async function* () {
      for (let i = 0; i < GiB / MiB; i++) {
        const chunk = Buffer.from(base)
        chunk.writeUInt32BE(i, 0)
        hash.update(chunk)
        yield chunk
      }
    })()
    const added = await sdk.add(source, { pin: true })
    const sent = hash.digest('hex')
    assert.equal(added.size, GiB)
    const back = createHash('sha256')
    let received = 0
    for await (const chunk of sdk.cat(added.cid)) {
      back.update(chunk)
      received += chunk.byteLength
    }
    assert.equal(received, GiB)
    assert.equal(back.digest('hex'), sent)
    const nodes = await Promise.all(cluster.nodes.map((n) => peakRss(n.pid as number)))
    const report = `client ${(peak / MiB).toFixed(0)} MiB, nodes ${nodes.map((b) => (b / MiB).toFixed(0)).join(' / ')} MiB`
    process.stdout.write(`# peak RSS: ${report}\n`)
    assert.ok(peak < 512 * MiB, `client RSS: ${report}`)
    for (const n of nodes) assert.ok(n < 900 * MiB, `node RSS: ${report}`)
  })
})
