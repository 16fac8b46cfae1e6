import type { NodeStateStore } from '../block-store/block-store.js'

/** A JSON record of node state (cursors, pass figures); undefined when absent or unreadable. */
export async function readStateJson<T>(state: NodeStateStore, name: string): Promise<T | undefined> {
  const raw = await state.getState(name)
  if (raw === undefined) return undefined
  try {
    return JSON.parse(Buffer.from(raw).toString()) as T
  } catch {
    // Written by a version that crashed mid-way or by another format: start that state over.
    return undefined
  }
}

/** Writes (or, with undefined, removes) a JSON record of node state. */
export function writeStateJson(state: NodeStateStore, name: string, value: unknown): Promise<void> {
  return state.setState(name, value === undefined ? undefined : Buffer.from(JSON.stringify(value)))
}
