import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rename } from 'node:fs/promises'
import { join } from 'node:path'

const NODE_ID_FILE = 'node-id'

/**
 * The node's stable identity: created once, then read from the data directory on every start,
 * so that placement survives restarts and address changes. Written with fsync and an atomic
 * rename: a crash leaves either no id or a whole one.
 */
export async function loadOrCreateNodeId(dataDir: string): Promise<string> {
  const path = join(dataDir, NODE_ID_FILE)
  try {
    const id = (await readFile(path, 'utf8')).trim()
    if (/^[a-z0-9-]{8,64}$/.test(id)) return id
    throw new Error(
      `${path} holds an invalid node id "${id.slice(0, 80)}"; remove it only if this is a new node`,
    )
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const id = `node-${randomBytes(8).toString('hex')}`
  await writeDurably(dataDir, NODE_ID_FILE, `${id}\n`)
  return id
}

const INCARNATION_FILE = 'membership-incarnation'

/**
 * The membership incarnation this start announces itself with: one more than the previous
 * start's, persisted (fsync, atomic rename) before use, so a restarted node outranks every record
 * the cluster kept of its previous life, even its tombstone. Refutations raise it further in
 * memory; a restart that comes back below them learns its old records from a seed and refutes.
 */
export async function nextIncarnation(dataDir: string): Promise<number> {
  const path = join(dataDir, INCARNATION_FILE)
  let previous = 0
  try {
    const text = (await readFile(path, 'utf8')).trim()
    if (!/^\d{1,15}$/.test(text))
      throw new Error(`${path} holds an invalid incarnation "${text.slice(0, 40)}"`)
    previous = Number(text)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const next = previous + 1
  await writeDurably(dataDir, INCARNATION_FILE, `${next}\n`)
  return next
}

async function writeDurably(dir: string, name: string, text: string): Promise<void> {
  await mkdir(dir, { recursive: true })
  const path = join(dir, name)
  const tmp = `${path}.tmp`
  const fh = await open(tmp, 'w')
  await fh.writeFile(text)
  await fh.sync()
  await fh.close()
  await rename(tmp, path)
  const d = await open(dir, 'r')
  await d.sync()
  await d.close()
}
