import {
  assertStorableBlock,
  BlockCorruptError,
  BlockNotFoundError,
  blockKey,
  blockMatches,
  type CID,
} from '@mycel/core'
import type { BlockStore, BlockStoreHealth, BlockStoreStats } from './block-store.js'

/** In-memory BlockStore with the same contract as RocksBlockStore, for unit tests. */
export class MemoryBlockStore implements BlockStore {
  private readonly blocks = new Map<string, Uint8Array>()

  async put(cid: CID, bytes: Uint8Array): Promise<void> {
    assertStorableBlock(cid, bytes)
    this.blocks.set(keyOf(cid), Uint8Array.from(bytes))
  }

  async get(cid: CID): Promise<Uint8Array> {
    const bytes = this.blocks.get(keyOf(cid))
    if (bytes === undefined) throw new BlockNotFoundError(cid.toString())
    if (!blockMatches(cid, bytes)) {
      this.blocks.delete(keyOf(cid))
      throw new BlockCorruptError(cid.toString())
    }
    return bytes
  }

  async has(cids: readonly CID[]): Promise<boolean[]> {
    return cids.map((c) => this.blocks.has(keyOf(c)))
  }

  async delete(cid: CID): Promise<boolean> {
    return this.blocks.delete(keyOf(cid))
  }

  stats(): BlockStoreStats {
    let bytes = 0
    for (const b of this.blocks.values()) bytes += b.byteLength
    return { blocks: this.blocks.size, bytes }
  }

  health(): BlockStoreHealth {
    return { ok: true }
  }

  async selfCheck(): Promise<BlockStoreHealth> {
    return this.health()
  }

  async close(): Promise<void> {}

  async putUnverifiedForTesting(cid: CID, bytes: Uint8Array): Promise<void> {
    this.blocks.set(keyOf(cid), Uint8Array.from(bytes))
  }
}

function keyOf(cid: CID): string {
  return Buffer.from(blockKey(cid)).toString('hex')
}
