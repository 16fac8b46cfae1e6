import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import * as dagPb from '@ipld/dag-pb'
import { CID, CODEC_DAG_PB, CODEC_RAW, UnsupportedCodecError } from '@mycel/core'

export const CODEC_DAG_CBOR = 0x71
export const CODEC_DAG_JSON = 0x0129
export const CODEC_LIBP2P_KEY = 0x72
/** Plain JSON and CBOR: documents without IPLD links. */
export const CODEC_JSON = 0x0200
export const CODEC_CBOR = 0x51

/** Codecs whose blocks never link to others. */
export function isLeafCodec(code: number): boolean {
  return code === CODEC_RAW || code === CODEC_LIBP2P_KEY || code === CODEC_JSON || code === CODEC_CBOR
}

/**
 * The links of a block in the order its codec defines them (dag-pb: link order; dag-cbor and
 * dag-json: field order). UnsupportedCodecError for codecs whose links Mycel cannot read.
 */
export function blockLinks(cid: CID, bytes: Uint8Array): CID[] {
  switch (cid.code) {
    case CODEC_DAG_PB:
      return dagPb.decode(bytes).Links.map((l) => l.Hash as unknown as CID)
    case CODEC_DAG_CBOR:
      return collectCids(dagCbor.decode(bytes))
    case CODEC_DAG_JSON:
      return collectCids(dagJson.decode(bytes))
    default:
      if (isLeafCodec(cid.code)) return []
      throw new UnsupportedCodecError(cid.code, `cannot follow the links of ${cid.toString()}`)
  }
}

function collectCids(value: unknown, out: CID[] = []): CID[] {
  const cid = CID.asCID(value)
  if (cid !== null) {
    out.push(cid as CID)
  } else if (Array.isArray(value)) {
    for (const v of value) collectCids(v, out)
  } else if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    for (const v of Object.values(value)) collectCids(v, out)
  }
  return out
}
