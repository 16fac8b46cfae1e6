/**
 * The RocksDB write thread. A synced batch write blocks its thread for the fdatasync, and the
 * binding only writes synchronously, so writes run here instead of on the event loop that serves
 * gRPC. The worker shares the main thread's open database through its native handle (RocksDB is
 * thread-safe); it applies each batch it is sent, with sync, and answers when it is durable.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { RocksLevel } from '@nxtedition/rocksdb'

export interface WriteRequest {
  id: number
  sync: boolean
  ops: Array<{ type: 'put' | 'del'; column: string; key: Uint8Array; value?: Uint8Array }>
}

export interface WriteReply {
  id: number
  error?: string
}

const port = parentPort
if (port === null) throw new Error('rocks-writer must run as a worker thread')

const db = new RocksLevel(workerData.handle as bigint as unknown as string, {
  keyEncoding: 'buffer',
  valueEncoding: 'buffer',
})
await db.open()

port.on('message', async (req: WriteRequest | 'close') => {
  if (req === 'close') {
    // After a write error RocksDB refuses the first close ("Seen error"); the owner closes again.
    await db.close().catch(() => undefined)
    port.close()
    return
  }
  try {
    const batch = db.batch()
    for (const op of req.ops) {
      const column = db.columns[op.column]
      const key = Buffer.from(op.key.buffer, op.key.byteOffset, op.key.byteLength)
      if (op.type === 'put') {
        const value = op.value as Uint8Array
        batch.put(key, Buffer.from(value.buffer, value.byteOffset, value.byteLength), { column })
      } else {
        batch.del(key, { column })
      }
    }
    await batch.write({ sync: req.sync })
    port.postMessage({ id: req.id } satisfies WriteReply)
  } catch (err) {
    port.postMessage({
      id: req.id,
      error: err instanceof Error ? err.message : String(err),
    } satisfies WriteReply)
  }
})
port.postMessage('ready')
