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
  await mkdir(dataDir, { recursive: true })
  const id = `node-${randomBytes(8).toString('hex')}`
  const tmp = `${path}.tmp`
  const fh = await open(tmp, 'w')
  await fh.writeFile(`${id}\n`)
  await fh.sync()
  await fh.close()
  await rename(tmp, path)
  const dir = await open(dataDir, 'r')
  await dir.sync()
  await dir.close()
  return id
}
