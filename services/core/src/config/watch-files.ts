import { type FSWatcher, watch } from 'node:fs'
import { dirname } from 'node:path'

/** Debounce of file-system events: a Secret update renames several entries at once. */
const WATCH_DEBOUNCE_MS = 200

/**
 * Calls `check` when files may have changed: on file-system events in their directories (which
 * see Kubernetes' atomic `..data` symlink swap of a mounted Secret) and every `intervalMs` as a
 * fallback for file systems without events. `check` decides whether anything really changed.
 * Returns a function that stops watching.
 */
export function watchFiles(files: readonly string[], intervalMs: number, check: () => void): () => void {
  const watchers: FSWatcher[] = []
  let debounce: NodeJS.Timeout | undefined
  for (const dir of new Set(files.map((f) => dirname(f)))) {
    try {
      const w = watch(dir, { persistent: false }, () => {
        clearTimeout(debounce)
        debounce = setTimeout(check, WATCH_DEBOUNCE_MS)
        debounce.unref()
      })
      w.on('error', () => w.close())
      watchers.push(w)
    } catch {
      // Some file systems cannot be watched; the periodic check still sees changes.
    }
  }
  const timer = setInterval(check, intervalMs)
  timer.unref()
  return () => {
    clearInterval(timer)
    clearTimeout(debounce)
    for (const w of watchers) w.close()
  }
}
