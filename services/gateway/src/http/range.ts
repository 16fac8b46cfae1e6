import { RangeNotSatisfiableError } from '@mycel/core'

export interface ByteRange {
  /** First byte, inclusive. */
  start: number
  /** Last byte, inclusive. */
  end: number
}

/**
 * Parses a Range header for a representation of `size` bytes (RFC 9110 §14.2).
 * - absent, another unit, malformed or several ranges: undefined, and the whole body is sent
 *   with 200 (RFC 9110 lets a server ignore Range; Mycel's documented policy is single ranges);
 * - one satisfiable range: that range, clamped to the size;
 * - one unsatisfiable range: RangeNotSatisfiableError (416 with `Content-Range: bytes *\/size`).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header)
  if (m === null) return undefined
  const specs = (m[1] as string)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
  if (specs.length !== 1) return undefined
  const spec = specs[0] as string
  const suffix = /^-(\d+)$/.exec(spec)
  if (suffix !== null) {
    const n = Number(suffix[1])
    if (n === 0 || size === 0) throw new RangeNotSatisfiableError(size, header)
    return { start: Math.max(0, size - n), end: size - 1 }
  }
  const full = /^(\d+)-(\d*)$/.exec(spec)
  if (full === null) return undefined
  const start = Number(full[1])
  const end = full[2] === '' ? Number.MAX_SAFE_INTEGER : Number(full[2])
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return undefined
  if (start >= size) throw new RangeNotSatisfiableError(size, header)
  return { start, end: Math.min(end, size - 1) }
}
