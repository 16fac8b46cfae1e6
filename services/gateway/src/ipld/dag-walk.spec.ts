import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagPb from '@ipld/dag-pb'
import { BlockNotFoundError, type CID } from '@mycel/core'
import { UnixFS } from 'ipfs-unixfs'
import { CID as MfCID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { type Block, walkDag } from './dag-walk.js'

async function rawBlock(text: string): Promise<Block> {
  const bytes = new TextEncoder().encode(text)
  return { cid: MfCID.createV1(raw.code, await sha256.digest(bytes)) as CID, bytes }
}

async function pbBlock(type: 'file' | 'directory', links: Array<[string, Block]>): Promise<Block> {
  const bytes = dagPb.encode(
    dagPb.prepare({
      Data: new UnixFS({ type }).marshal(),
      Links: links.map(([Name, b]) => ({ Name, Hash: b.cid, Tsize: b.bytes.length })),
    }),
  )
  return { cid: MfCID.createV1(dagPb.code, await sha256.digest(bytes)) as CID, bytes }
}

function storeOf(blocks: Block[]) {
  const map = new Map(blocks.map((b) => [b.cid.toString(), b.bytes]))
  return async (cid: CID) => {
    const bytes = map.get(cid.toString())
    if (bytes === undefined) throw new BlockNotFoundError(cid.toString())
    return bytes
  }
}

async function collect(it: AsyncIterable<Block>): Promise<string[]> {
  const out: string[] = []
  for await (const b of it) out.push(b.cid.toString())
  return out
}

describe('walkDag', () => {
  it('emits depth first in link order; dups=n once per CID, dups=y at every link', async () => {
    const a = await rawBlock('a')
    const b = await rawBlock('b')
    const file = await pbBlock('file', [
      ['', a],
      ['', b],
      ['', a],
    ])
    const dir = await pbBlock('directory', [
      ['f', file],
      ['g', a],
    ])
    const get = storeOf([a, b, file, dir])
    const ids = (bs: Block[]) => bs.map((x) => x.cid.toString())
    assert.deepEqual(await collect(walkDag(dir, get, { scope: 'all', dups: false })), ids([dir, file, a, b]))
    assert.deepEqual(
      await collect(walkDag(dir, get, { scope: 'all', dups: true })),
      ids([dir, file, a, b, a, a]),
    )
    assert.deepEqual(await collect(walkDag(dir, get, { scope: 'block', dups: false })), ids([dir]))
    // entity: a directory is its own block; a file is all of its chunks.
    assert.deepEqual(await collect(walkDag(dir, get, { scope: 'entity', dups: false })), ids([dir]))
    assert.deepEqual(await collect(walkDag(file, get, { scope: 'entity', dups: false })), ids([file, a, b]))
  })

  it('follows dag-cbor links in field order', async () => {
    const a = await rawBlock('x')
    const b = await rawBlock('y')
    const bytes = dagCbor.encode({ first: a.cid, nested: { list: [b.cid, 'text'] } })
    const root = { cid: MfCID.createV1(dagCbor.code, await sha256.digest(bytes)) as CID, bytes }
    assert.deepEqual(
      await collect(walkDag(root, storeOf([a, b]), { scope: 'all', dups: false })),
      [root, a, b].map((x) => x.cid.toString()),
    )
  })

  it('fails at a missing block after emitting what came before it', async () => {
    const a = await rawBlock('present')
    const missing = await rawBlock('missing')
    const dir = await pbBlock('directory', [
      ['a', a],
      ['m', missing],
    ])
    const seen: string[] = []
    await assert.rejects(async () => {
      for await (const b of walkDag(dir, storeOf([a]), { scope: 'all', dups: false }))
        seen.push(b.cid.toString())
    }, BlockNotFoundError)
    assert.deepEqual(seen, [dir.cid.toString(), a.cid.toString()])
  })
})
