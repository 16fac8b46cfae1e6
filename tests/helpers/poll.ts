import { setTimeout as sleep } from 'node:timers/promises'

/**
 * The tests' one polling loop (timings on this shared 2-core machine are noisy, so conditions are
 * awaited, never slept on). Calls `check` every `intervalMs` until it returns a value other than
 * undefined, and returns it. A check that throws counts as not yet (a server restarting, a
 * connection refused): throw an Error that says what was seen to have the timeout's message name
 * it. After `timeoutMs` the error names `what` and the last failure.
 */
export async function poll<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
  intervalMs = 200,
): Promise<T> {
  const until = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await check()
      if (v !== undefined) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > until) {
      const seen = last instanceof Error ? last.message : last === undefined ? '' : String(last)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${seen ? `; last: ${seen}` : ''}`)
    }
    await sleep(intervalMs)
  }
}

/** poll for a condition: resolves once `check` returns true. */
export async function eventually(
  check: () => Promise<boolean>,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  await poll(what, timeoutMs, async () => ((await check()) ? true : undefined))
}
