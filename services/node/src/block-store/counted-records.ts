import type { WriteRequest } from './rocks-writer.worker.js'

/** A put (stored only when absent: records are content-addressed) or a delete of one record. */
export type RecordOp = { kind: 'put'; key: Buffer; bytes: Uint8Array } | { kind: 'delete'; key: Buffer }

export interface RecordCounts {
  count: number
  bytes: number
}

/**
 * Turns queued puts and deletes of content-addressed records into one batch for a store that
 * keeps each record in `columns.data` and its size in `columns.sizes` (so listings and counters
 * never read values), with exact counters. `sizes[i]` is op i's stored size before the batch (read
 * by the store's single writer, so nothing else changes them meanwhile). Returns the batch, the
 * new counts and, per op, the size held before it (undefined: it was absent).
 */
export function planRecordBatch(
  ops: readonly RecordOp[],
  sizes: ReadonlyArray<Buffer | undefined>,
  columns: { data: string; sizes: string },
  before: RecordCounts,
): { batch: WriteRequest['ops']; counts: RecordCounts; held: Array<number | undefined> } {
  const present = new Map<string, number>()
  ops.forEach((op, i) => {
    const size = sizes[i]
    const id = op.key.toString('hex')
    if (size !== undefined && !present.has(id)) present.set(id, size.readUInt32BE(0))
  })
  const counts = { ...before }
  const batch: WriteRequest['ops'] = []
  const held = ops.map((op) => {
    const id = op.key.toString('hex')
    const had = present.get(id)
    if (op.kind === 'put' && had === undefined) {
      const size = Buffer.alloc(4)
      size.writeUInt32BE(op.bytes.byteLength)
      batch.push({ type: 'put', column: columns.data, key: op.key, value: op.bytes })
      batch.push({ type: 'put', column: columns.sizes, key: op.key, value: size })
      present.set(id, op.bytes.byteLength)
      counts.count += 1
      counts.bytes += op.bytes.byteLength
    } else if (op.kind === 'delete' && had !== undefined) {
      batch.push({ type: 'del', column: columns.data, key: op.key })
      batch.push({ type: 'del', column: columns.sizes, key: op.key })
      present.delete(id)
      counts.count -= 1
      counts.bytes -= had
    }
    return had
  })
  return { batch, counts, held }
}

export function u64(n: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}
