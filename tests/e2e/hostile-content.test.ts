import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import { sha256 as sha256Hasher } from 'multiformats/hashes/sha2'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { sha256 } from '../helpers/data.js'

/** Stores a dag-pb node through block/put and returns its CID. */
async function putNode(url: string, node: dagPb.PBNode): Promise<CID> {
  const bytes = dagPb.encode(dagPb.prepare(node))
  const form = new FormData()
  form.append('file', new Blob([bytes]), 'block')
  const res = await fetch(`${url}/api/v0/block/put?cid-codec=dag-pb`, { method: 'POST', body: form })
  assert.equal(res.status, 200, await res.clone().text())
  const cid = CID.createV1(0x70, await sha256Hasher.digest(bytes))
  assert.equal(((await res.json()) as { Key: string }).Key, cid.toString())
  return cid
}

const fileNode = (blockSizes: bigint[], links: dagPb.PBLink[]): dagPb.PBNode => ({
  Data: new UnixFS({ type: 'file', blockSizes }).marshal(),
  Links: links,
})

/** Reads a response to its end or until the connection is cut; the status and byte count. */
async function readAll(res: Response): Promise<{ status: number; bytes: number; complete: boolean }> {
  let bytes = 0
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) bytes += chunk.byteLength
    return { status: res.status, bytes, complete: true }
  } catch {
    return { status: res.status, bytes, complete: false }
  }
}

/**
 * Content and clients a gateway must survive: downloads cut short inside a deep file DAG, and
 * DAGs that lie (a missing block two levels down, block sizes that do not match the links).
 */
describe('hostile content and clients leave the gateway serving', () => {
  let cluster: TestCluster
  let url: string
  let big: { cid: string; hash: string }

  before(async () => {
    cluster = await startCluster({ nodes: 2 })
    url = cluster.gatewayUrl
    // 8 MiB in 16 KiB chunks: 512 leaves under intermediate nodes (a DAG three levels deep).
    const bytes = randomBytes(8 * 1024 * 1024)
    const up = await fetch(`${url}/mycel/v1/upload?chunker=size-16384`, { method: 'POST', body: bytes })
    assert.equal(up.status, 201)
    big = { cid: ((await up.json()) as { cid: string }).cid, hash: sha256(bytes) }
  })
  after(async () => {
    await cluster?.destroy()
  })

  async function stillServing(): Promise<void> {
    assert.ok(cluster.gateway.running, 'the gateway process is running')
    const res = await fetch(`${url}/ipfs/${big.cid}`)
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), big.hash)
  }

  it('clients that disconnect in the middle of deep downloads', async () => {
    for (let i = 0; i < 5; i++) {
      const abort = new AbortController()
      const res = await fetch(`${url}/ipfs/${big.cid}`, { signal: abort.signal })
      const reader = (res.body as ReadableStream<Uint8Array>).getReader()
      await reader.read()
      abort.abort()
      await reader.cancel().catch(() => undefined)
    }
    await new Promise((r) => setTimeout(r, 500))
    await stillServing()
  })

  it('a file whose block two levels down is missing, or whose sizes do not match its links', async () => {
    const leaf = randomBytes(100)
    const missingLeaf = CID.createV1(0x55, await sha256Hasher.digest(leaf))
    const middle = await putNode(url, fileNode([100n], [{ Hash: missingLeaf, Tsize: 100 }]))
    const missingDeep = await putNode(url, fileNode([100n], [{ Hash: middle, Tsize: 120 }]))
    const inconsistent = await putNode(url, fileNode([5n, 5n], []))
    const overInconsistent = await putNode(url, fileNode([10n], [{ Hash: inconsistent, Tsize: 20 }]))
    for (const cid of [missingDeep, overInconsistent]) {
      const res = await readAll(await fetch(`${url}/ipfs/${cid}`))
      // Either an error before the body, or a body cut short: never a complete, wrong answer.
      assert.ok(res.status >= 400 || !res.complete || res.bytes < 100, `${cid}: ${JSON.stringify(res)}`)
      const cat = await readAll(await fetch(`${url}/api/v0/cat?arg=${cid}`, { method: 'POST' }))
      assert.ok(cat.status >= 400 || !cat.complete, `cat ${cid}: ${JSON.stringify(cat)}`)
      await stillServing()
    }
    const direct = await fetch(`${url}/ipfs/${inconsistent}`)
    assert.ok(direct.status === 400 || direct.status === 200, `${direct.status}`)
    await direct.arrayBuffer().catch(() => undefined)
    await stillServing()
  })
})
