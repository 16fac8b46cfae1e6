import { StoreUnavailableError } from '@mycel/core'

export interface GroupCommitHooks<Op, R> {
  /** After a batch was committed, with what `commit` returned. */
  committed?: (result: R) => void
  /** A batch failed: log it (its operations are then rejected with StoreUnavailableError). */
  failed: (error: Error, ops: Op[]) => void
}

/**
 * Group commit: operations queue up, and one writer at a time commits everything queued as one
 * batch (one synced RocksDB write), so under load many operations share one fdatasync. `commit`
 * resolves or rejects each operation itself; when it throws, every operation of the batch is
 * rejected with StoreUnavailableError.
 */
export class GroupCommit<Op extends { reject: (err: Error) => void }, R = void> {
  private queue: Op[] = []
  private writing = false
  private idleWaiters: Array<() => void> = []

  constructor(
    private readonly commit: (ops: Op[]) => Promise<R>,
    private readonly hooks: GroupCommitHooks<Op, R>,
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
        // Not `committed?.(await ...)`: an optional call skips its arguments when the hook is absent.
        const result = await this.commit(ops)
        this.hooks.committed?.(result)
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err))
        this.hooks.failed(error, ops)
        for (const op of ops) op.reject(new StoreUnavailableError(`write failed: ${error.message}`))
      }
    }
    this.writing = false
    for (const resolve of this.idleWaiters.splice(0)) resolve()
  }
}
