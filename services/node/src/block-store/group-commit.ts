import type { Logger } from '@mycel/core'
import { StoreUnavailableError } from '@mycel/core'

/**
 * Group commit: operations queue up, and one writer at a time commits everything queued as one
 * batch (one synced RocksDB write), so under load many operations share one fdatasync. `commit`
 * resolves or rejects each operation itself; when it throws, every operation of the batch is
 * rejected with StoreUnavailableError.
 */
export class GroupCommit<Op extends { reject: (err: Error) => void }> {
  private queue: Op[] = []
  private writing = false
  private idleWaiters: Array<() => void> = []

  constructor(
    private readonly commit: (ops: Op[]) => Promise<void>,
    private readonly logger: Logger,
    private readonly what: string,
  ) {}

  enqueue(op: Op): void {
    this.queue.push(op)
    if (!this.writing) {
      this.writing = true
      // Yield once so that writes arriving in the same tick share the batch.
      setImmediate(() => void this.drain())
    }
  }

  /** Resolves once every queued operation is committed (or failed). */
  async idle(): Promise<void> {
    if (this.writing || this.queue.length > 0)
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve))
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const ops = this.queue.splice(0)
      try {
        await this.commit(ops)
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err))
        this.logger.error({ err: error, ops: ops.length }, `${this.what} write failed`)
        for (const op of ops) op.reject(new StoreUnavailableError(`write failed: ${error.message}`))
      }
    }
    this.writing = false
    for (const resolve of this.idleWaiters.splice(0)) resolve()
  }
}
