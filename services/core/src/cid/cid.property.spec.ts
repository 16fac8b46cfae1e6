import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { bases } from 'multiformats/basics'
import { create as createDigest } from 'multiformats/hashes/digest'
import { isMycelError } from '../errors.js'
import { CID, decodeCid, parseCid } from './cid.js'

/** Any CID Mycel may meet: v0 (dag-pb, sha2-256) or v1 with a common codec and hash. */
const anyCid = fc
  .record({
    v0: fc.boolean(),
    codec: fc.constantFrom(0x55, 0x70, 0x71, 0x0129, 0x0200),
    hash: fc.constantFrom(
      { code: 0x12, length: 32 },
      { code: 0x13, length: 64 },
      { code: 0x00, length: 0 },
      { code: 0x00, length: 20 },
    ),
    seed: fc.uint8Array({ minLength: 64, maxLength: 64 }),
  })
  .map(({ v0, codec, hash, seed }) =>
    v0
      ? CID.createV0(createDigest(0x12, seed.subarray(0, 32)))
      : CID.createV1(codec, createDigest(hash.code, seed.subarray(0, hash.length))),
  )

/** Only InvalidCidError (400) may come out of parsing text from a request. */
function parsesOrRefuses(parse: () => unknown): void {
  try {
    parse()
  } catch (err) {
    assert.ok(isMycelError(err) && err.code === 'INVALID_CID', `unexpected ${String(err)}`)
  }
}

describe('CID parsing (property-based)', () => {
  it('any text parses or is refused with INVALID_CID', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string({ unit: 'binary' }),
          fc.stringMatching(/^[bBzQkfmu1][a-zA-Z0-9]{0,80}$/),
        ),
        (text) => parsesOrRefuses(() => parseCid(text)),
      ),
      { numRuns: 2000 },
    )
  })

  it('any bytes decode or are refused with INVALID_CID', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => parsesOrRefuses(() => decodeCid(bytes))),
      {
        numRuns: 2000,
      },
    )
  })

  it('round-trips through every multibase and through its binary form', () => {
    // Not identity: it writes the CID's bytes as UTF-8 text, which cannot carry arbitrary bytes.
    const v1Bases = Object.values(bases).filter((b) => b.name !== 'identity')
    fc.assert(
      fc.property(anyCid, fc.nat(), (cid, i) => {
        assert.ok(decodeCid(cid.bytes).equals(cid))
        if (cid.version === 0) {
          assert.ok(parseCid(cid.toString()).equals(cid))
          return
        }
        const base = v1Bases[i % v1Bases.length] as (typeof v1Bases)[number]
        const text = cid.toString(base.encoder)
        assert.ok(parseCid(text).equals(cid), `${base.name}: ${text}`)
        assert.ok(parseCid(` ${text}\n`).equals(cid), 'surrounding white space is ignored')
      }),
      { numRuns: 1000 },
    )
  })

  it('a CID with one character changed parses as a CID or is refused, never worse', () => {
    fc.assert(
      fc.property(anyCid, fc.nat(), fc.string({ minLength: 1, maxLength: 1 }), (cid, at, c) => {
        const text = cid.toString()
        const i = at % text.length
        parsesOrRefuses(() => parseCid(`${text.slice(0, i)}${c}${text.slice(i + 1)}`))
      }),
      { numRuns: 1000 },
    )
  })
})
