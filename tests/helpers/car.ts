import { createHash } from 'node:crypto'
import { CarReader } from '@ipld/car/reader'
import { CarWriter } from '@ipld/car/writer'
import * as dagPb from '@ipld/dag-pb'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 as sha256Hasher } from 'multiformats/hashes/sha2'

export interface CarBlock {
  cid: CID
  bytes: Uint8Array
}

/** Parses a whole CAR and checks that every block hashes to its CID (sha2-256 only here). */
export async function parseAndVerifyCar(bytes: Uint8Array): Promise<{ roots: CID[]; blocks: CarBlock[] }> {
  const reader = await CarReader.fromBytes(bytes)
  const roots = (await reader.getRoots()) as CID[]
  const blocks: CarBlock[] = []
  for await (const b of reader.blocks()) {
    const cid = b.cid as CID
    if (cid.multihash.code !== 0x12) throw new Error(`unexpected hash 0x${cid.multihash.code.toString(16)}`)
    const digest = createHash('sha256').update(b.bytes).digest()
    if (!digest.equals(Buffer.from(cid.multihash.digest)))
      throw new Error(`block ${cid} does not hash to its CID`)
    blocks.push({ cid, bytes: b.bytes })
  }
  return { roots, blocks }
}

/** Writes a CARv1 of `blocks` in order. */
export async function writeCar(roots: CID[], blocks: CarBlock[]): Promise<Uint8Array> {
  const { writer, out } = CarWriter.create(roots)
  const chunks: Uint8Array[] = []
  const collect = (async () => {
    for await (const c of out) chunks.push(c)
  })()
  for (const b of blocks) await writer.put(b)
  await writer.close()
  await collect
  return Buffer.concat(chunks)
}

export async function rawBlock(bytes: Uint8Array): Promise<CarBlock> {
  return { cid: CID.createV1(raw.code, await sha256Hasher.digest(bytes)), bytes }
}

/**
 * A UnixFS DAG built locally with Kubo's parameters (CIDv1, raw leaves, 256 KiB chunks), and its
 * blocks in depth-first link order: the order a dfs CAR of it must have.
 */
export async function localUnixfs(
  files: Array<{ path: string; bytes: Uint8Array }>,
  opts: { wrapWithDirectory?: boolean; chunkSize?: number } = {},
): Promise<{ root: CID; dfs: CarBlock[]; store: MemoryBlockstore }> {
  const store = new MemoryBlockstore()
  let root: CID | undefined
  for await (const entry of importer(
    files.map((f) => ({ path: f.path, content: f.bytes })),
    store,
    {
      cidVersion: 1,
      rawLeaves: true,
      wrapWithDirectory: opts.wrapWithDirectory ?? false,
      ...(opts.chunkSize ? { chunker: fixedSize({ chunkSize: opts.chunkSize }) } : {}),
    },
  )) {
    root = entry.cid as unknown as CID
  }
  if (root === undefined) throw new Error('nothing imported')
  return { root, dfs: await dfsOrder(root, store), store }
}

/** Depth-first, link order, each block once: the reference order for dfs CARs. */
export async function dfsOrder(root: CID, store: MemoryBlockstore): Promise<CarBlock[]> {
  const out: CarBlock[] = []
  const seen = new Set<string>()
  const visit = async (cid: CID) => {
    if (seen.has(cid.toString())) return
    seen.add(cid.toString())
    const bytes = await getAll(store, cid)
    out.push({ cid, bytes })
    if (cid.code === dagPb.code) for (const l of dagPb.decode(bytes).Links) await visit(l.Hash as CID)
  }
  await visit(root)
  return out
}

async function getAll(store: MemoryBlockstore, cid: CID): Promise<Uint8Array> {
  const got = store.get(cid as never) as unknown
  if (got instanceof Uint8Array) return got
  const chunks: Uint8Array[] = []
  for await (const c of got as AsyncIterable<Uint8Array>) chunks.push(c)
  return Buffer.concat(chunks)
}
