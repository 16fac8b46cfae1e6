import { createHash } from 'node:crypto'
import { type CID, decodeCid } from '@mycel/core'
import { PinRecord } from '@mycel/proto'

export type { PinRecord }

/** Anti-entropy compares the set in this many buckets (by the first byte of SHA-256 of the key). */
export const PIN_BUCKETS = 256
const DIGEST_BYTES = 32

/** Records are keyed by the CIDv1 form, so `Qm…` and its CIDv1 are one pin. */
export function pinKey(cid: CID): string {
  return cid.toV1().toString()
}

export function bucketOf(key: string): number {
  return createHash('sha256').update(key).digest()[0] as number
}

/** Last writer wins: the higher (timestamp, origin); true when `a` beats `b`. */
export function newer(a: PinRecord, b: PinRecord): boolean {
  if (a.timestamp !== b.timestamp) return a.timestamp > b.timestamp
  return a.origin > b.origin
}

function recordHash(r: PinRecord): Buffer {
  return createHash('sha256').update(PinRecord.encode(r).finish()).digest()
}

function xorInto(target: Buffer, h: Buffer): void {
  for (let i = 0; i < DIGEST_BYTES; i++) target[i] = (target[i] as number) ^ (h[i] as number)
}

/**
 * The whole pin set of a node in memory: one last-writer-wins record per CID (a tombstone once
 * the pin is removed), and per bucket a digest, the XOR of SHA-256 of its records, kept up to date
 * on every change so that two nodes find the buckets they disagree on by comparing 256 digests.
 */
export class PinSet {
  private readonly records = new Map<string, PinRecord>()
  private readonly digests: Buffer[] = Array.from({ length: PIN_BUCKETS }, () => Buffer.alloc(DIGEST_BYTES))
  private livePins = 0

  /** Merges one record; true when it changed the set (it was newer than what was there). */
  merge(record: PinRecord): boolean {
    const key = pinKey(decodeCid(record.cid))
    const current = this.records.get(key)
    if (current !== undefined && !newer(record, current)) return false
    const digest = this.digests[bucketOf(key)] as Buffer
    if (current !== undefined) {
      xorInto(digest, recordHash(current))
      if (current.pinned) this.livePins--
    }
    xorInto(digest, recordHash(record))
    if (record.pinned) this.livePins++
    this.records.set(key, record)
    return true
  }

  /** Whether `record` would change the set. */
  wouldChange(record: PinRecord): boolean {
    const current = this.records.get(pinKey(decodeCid(record.cid)))
    return current === undefined || newer(record, current)
  }

  get(cid: CID): PinRecord | undefined {
    return this.records.get(pinKey(cid))
  }

  /** Pinned records (not tombstones), in CID order. */
  pins(): PinRecord[] {
    return [...this.records.entries()]
      .filter(([, r]) => r.pinned)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, r]) => r)
  }

  get size(): number {
    return this.livePins
  }

  /** Every record, tombstones included. */
  get recordCount(): number {
    return this.records.size
  }

  bucketDigests(): Buffer[] {
    return this.digests.map((d) => Buffer.from(d))
  }

  /** Buckets whose digest differs from `theirs` (only among `only`, when given). */
  differingBuckets(theirs: readonly Uint8Array[], only?: ReadonlySet<number>): number[] {
    const out: number[] = []
    for (let b = 0; b < PIN_BUCKETS; b++) {
      if (only !== undefined && !only.has(b)) continue
      const t = theirs[b]
      if (t === undefined || Buffer.compare(Buffer.from(t), this.digests[b] as Buffer) !== 0) out.push(b)
    }
    return out
  }

  /** Records (tombstones included) of the given buckets. */
  recordsIn(buckets: ReadonlySet<number>): PinRecord[] {
    return [...this.records.entries()].filter(([k]) => buckets.has(bucketOf(k))).map(([, r]) => r)
  }

  /** The highest timestamp held (for the hybrid logical clock). */
  maxTimestamp(): bigint {
    let max = 0n
    for (const r of this.records.values()) if (r.timestamp > max) max = r.timestamp
    return max
  }
}
