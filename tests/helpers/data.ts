import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open } from 'node:fs/promises'

/**
 * Deterministic pseudo-random bytes: SHA-256 in counter mode over a seed. The same (size, seed)
 * gives the same bytes everywhere, so CIDs computed once with Kubo can be checked forever.
 */
export function* deterministicChunks(size: number, seed: string, chunk = 1 << 20): Generator<Buffer> {
  let produced = 0
  let counter = 0
  while (produced < size) {
    const n = Math.min(chunk, size - produced)
    const out = Buffer.allocUnsafe(n)
    for (let off = 0; off < n; off += 32) {
      const block = createHash('sha256').update(seed).update(String(counter++)).digest()
      block.copy(out, off, 0, Math.min(32, n - off))
    }
    produced += n
    yield out
  }
}

export function deterministicBytes(size: number, seed: string): Buffer {
  return Buffer.concat([...deterministicChunks(size, seed)])
}

/** Writes `size` deterministic bytes to `path` and returns their SHA-256 (hex). */
export async function writeDeterministicFile(path: string, size: number, seed: string): Promise<string> {
  const hash = createHash('sha256')
  const fh = await open(path, 'w')
  try {
    for (const chunk of deterministicChunks(size, seed)) {
      hash.update(chunk)
      await fh.write(chunk)
    }
  } finally {
    await fh.close()
  }
  return hash.digest('hex')
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** SHA-256 and length of a fetch Response body, read as a stream. */
export async function sha256OfResponse(res: Response): Promise<{ hash: string; bytes: number }> {
  const hash = createHash('sha256')
  let bytes = 0
  if (res.body) {
    for await (const chunk of res.body) {
      hash.update(chunk)
      bytes += chunk.byteLength
    }
  }
  return { hash: hash.digest('hex'), bytes }
}
