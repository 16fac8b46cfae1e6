import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import * as dagPb from '@ipld/dag-pb'
import { CID, CODEC_DAG_PB, CODEC_RAW, PathNotFoundError, UnsupportedCodecError } from '@mycel/core'
import { create as createDigest } from 'multiformats/hashes/digest'
import { asPathNotFound, formatContentPath, parseContentPath } from './content-path.js'
import {
  blockLinks,
  CODEC_CBOR,
  CODEC_DAG_CBOR,
  CODEC_DAG_JSON,
  CODEC_JSON,
  isLeafCodec,
} from './ipld-links.js'

const cidOf = (codec: number, bytes: Uint8Array) =>
  CID.create(1, codec, createDigest(0x12, createHash('sha256').update(bytes).digest())) as CID
const leaf = (n: number) => cidOf(CODEC_RAW, new Uint8Array([n]))

describe('blockLinks (shared by the gateway walks and the nodes pins)', () => {
  it('dag-pb: the links in link order', () => {
    const bytes = dagPb.encode(
      dagPb.prepare({
        Links: [
          { Hash: leaf(1), Name: 'a' },
          { Hash: leaf(2), Name: 'b' },
        ],
      }),
    )
    assert.deepEqual(
      blockLinks(cidOf(CODEC_DAG_PB, bytes), bytes).map(String),
      [leaf(1), leaf(2)].map(String),
    )
  })

  it('dag-cbor and dag-json: every CID in the value, nested ones included, in field order', () => {
    const value = { a: leaf(1), list: [leaf(2), { deep: leaf(3) }], n: 1, bytes: new Uint8Array([1]) }
    for (const [codec, encode] of [
      [CODEC_DAG_CBOR, dagCbor.encode],
      [CODEC_DAG_JSON, dagJson.encode],
    ] as const) {
      const bytes = encode(value)
      assert.deepEqual(
        blockLinks(cidOf(codec, bytes), bytes).map(String),
        [1, 2, 3].map((n) => String(leaf(n))),
      )
    }
  })

  it('raw, plain JSON and plain CBOR are leaves (no links, no error: they can be pinned)', () => {
    for (const codec of [CODEC_RAW, CODEC_JSON, CODEC_CBOR]) {
      assert.ok(isLeafCodec(codec))
      assert.deepEqual(blockLinks(cidOf(codec, new TextEncoder().encode('{}')), new Uint8Array()), [])
    }
    assert.ok(!isLeafCodec(CODEC_DAG_PB))
  })

  it('an unknown codec is UnsupportedCodecError', () => {
    assert.throws(
      () => blockLinks(cidOf(0x300001, new Uint8Array([1])), new Uint8Array([1])),
      UnsupportedCodecError,
    )
  })
})

describe('content paths (Kubo RPC arguments and the gRPC API alike)', () => {
  const root = leaf(9)

  it('parses CID, CID/a/b and /ipfs/CID/a/b; leading white space is dropped, trailing kept in a name', () => {
    assert.deepEqual(parseContentPath(` /ipfs/${root}/a//b `).segments, ['a', 'b '])
    assert.equal(parseContentPath(`${root}`).root.toString(), root.toString())
    assert.equal(formatContentPath(parseContentPath(`${root}/x/y`)), `/ipfs/${root}/x/y`)
  })

  it('rejects /ipns/ names, other absolute paths and dot segments', () => {
    for (const bad of [`/ipns/${root}`, `/foo/${root}`, `${root}/../x`, `${root}/./x`])
      assert.throws(() => parseContentPath(bad), /not supported|not a CID|not path segments/)
  })

  it("the UnixFS exporter's missing links become PathNotFoundError; other errors pass unchanged", () => {
    const path = parseContentPath(`${root}/a`)
    for (const err of [
      Object.assign(new Error('x'), { name: 'NotFoundError' }),
      Object.assign(new Error('x'), { code: 'ERR_NOT_FOUND' }),
      Object.assign(new Error('x'), { code: 'ERR_NOT_UNIXFS' }),
    ])
      assert.ok(asPathNotFound(err, path) instanceof PathNotFoundError)
    const notUnixfsAtRoot = Object.assign(new Error('x'), { code: 'ERR_NOT_UNIXFS' })
    assert.equal(asPathNotFound(notUnixfsAtRoot, parseContentPath(`${root}`)), notUnixfsAtRoot)
    const other = new Error('disk on fire')
    assert.equal(asPathNotFound(other, path), other)
  })
})
