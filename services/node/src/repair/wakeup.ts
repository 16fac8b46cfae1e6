/** A sleep that another part of the node can cut short (a trigger, a stop). */
export class Wakeup {
  private pending: (() => void) | undefined
  private woken = false

  /** Resolves after `ms` (never when Infinity) or at the next wake(), whichever comes first. */
  wait(ms: number): Promise<void> {
    if (this.woken) {
      this.woken = false
      return Promise.resolve()
    }
    return new Promise((resolve) => {
      // Background loops never keep a process alive on their own.
      const timer = Number.isFinite(ms) ? setTimeout(done, Math.max(0, ms)).unref() : undefined
      const self = this
      function done() {
        clearTimeout(timer)
        if (self.pending === done) self.pending = undefined
        resolve()
      }
      this.pending = done
    })
  }

  /** Ends the current wait, or the next one at once if nobody waits now. */
  wake(): void {
    const pending = this.pending
    this.woken = pending === undefined
    pending?.()
  }
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
export async function forEachBounded<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < items.length) await fn(items[next++] as T)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}

/** Waits for `p`, but at most `ms` (without holding the process open for the rest). */
export async function settleWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    p.then(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms).unref()
    }),
  ])
  clearTimeout(timer)
}
