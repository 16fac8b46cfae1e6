/**
 * Regenerates tests/helpers/kubo-vectors.ts: the CIDs that Kubo's own `ipfs add` gives to the
 * deterministic test files of tests/helpers/data.ts, so Mycel's importer can be checked against the
 * reference implementation without running Kubo in every test.
 *
 *   make kubo build
 *   KUBO_BIN=.tools/kubo-0.43.1/ipfs node tests/dist/bench/kubo-vectors.js --write
 *
 * Without --write the module text is printed instead. Kubo runs offline (no daemon, `--only-hash`)
 * in a throw-away repository under .bench/.
 */
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { writeDeterministicFile } from '../helpers/data.js'

const run = promisify(execFile)

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
export const KUBO_VERSION = '0.43.1'
export const SEED = 'mycel-cid-parity'
const CHUNK = 262_144
export const SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 174 * CHUNK + 1, 5 * 1_048_576 + 123]
/** A two-file directory, added with --wrap-with-directory (names are part of the root CID). */
export const DIR_FILES = [
  { name: 'a.bin', size: 1000, seed: `${SEED}/a` },
  { name: 'b.txt', size: 300_000, seed: `${SEED}/b` },
]

/** Environment for a Kubo process on this repository (telemetry off, whatever the build). */
export function kuboEnv(ipfsPath: string): NodeJS.ProcessEnv {
  return { ...process.env, IPFS_PATH: ipfsPath, IPFS_TELEMETRY: 'off' }
}

export function kuboBin(): string {
  return process.env.KUBO_BIN ?? join(ROOT, '.tools', `kubo-${KUBO_VERSION}`, 'ipfs')
}

/** Kubo repository settings for an offline node on loopback (see the peers notes). */
export async function initKuboRepo(
  bin: string,
  ipfsPath: string,
  apiPort = 0,
  gatewayPort = 0,
): Promise<void> {
  const env = kuboEnv(ipfsPath)
  const ipfs = (...args: string[]) => run(bin, args, { env, timeout: 60_000 })
  await ipfs('init', '--profile=test,autoconf-off')
  await ipfs('config', '--json', 'Bootstrap', '[]')
  await ipfs('config', 'Routing.Type', 'none')
  await ipfs('config', '--json', 'Addresses.Swarm', '["/ip4/127.0.0.1/tcp/0"]')
  await ipfs('config', 'Addresses.API', `/ip4/127.0.0.1/tcp/${apiPort}`)
  await ipfs('config', 'Addresses.Gateway', `/ip4/127.0.0.1/tcp/${gatewayPort}`)
  await ipfs('config', '--json', 'Discovery.MDNS.Enabled', 'false')
  await ipfs('config', '--json', 'AutoConf.Enabled', 'false')
}

function ipfs(bin: string, ipfsPath: string, args: string[]): Promise<string> {
  return run(bin, args, { env: kuboEnv(ipfsPath), timeout: 120_000, maxBuffer: 16 << 20 }).then((r) =>
    r.stdout.trim(),
  )
}

/** `ipfs add -Q --only-hash ARGS`: the root CID, nothing stored. */
async function onlyHash(bin: string, ipfsPath: string, args: string[]): Promise<string> {
  const cid = await ipfs(bin, ipfsPath, ['add', '-Q', '--only-hash', ...args])
  if (!/^[a-zA-Z0-9]+$/.test(cid)) throw new Error(`unexpected ipfs add output: ${cid}`)
  return cid
}

/**
 * The Size field that `ipfs add` reports (over RPC: {"Name","Hash","Size"}): the DAG's cumulative
 * size. The CLI prints no Size, so the file is added for real and `ipfs files stat` reads it back
 * (CumulativeSize is the same node.Size() value; checked against the RPC output).
 */
async function kuboSize(bin: string, ipfsPath: string, file: string, cidV1: string): Promise<string> {
  const stored = await ipfs(bin, ipfsPath, ['add', '-Q', '--cid-version=1', file])
  if (stored !== cidV1) throw new Error(`ipfs add gave ${stored} after --only-hash gave ${cidV1}`)
  const stat = JSON.parse(await ipfs(bin, ipfsPath, ['files', 'stat', '--enc=json', `/ipfs/${cidV1}`])) as {
    CumulativeSize: number
  }
  return String(stat.CumulativeSize)
}

async function main(): Promise<void> {
  const bin = kuboBin()
  const { stdout: version } = await run(bin, ['version', '--number'])
  if (version.trim() !== KUBO_VERSION)
    throw new Error(`${bin} is Kubo ${version.trim()}, not ${KUBO_VERSION}`)
  await mkdir(join(ROOT, '.bench'), { recursive: true })
  const work = await mkdtemp(join(ROOT, '.bench', 'kubo-vectors-'))
  try {
    const repo = join(work, 'ipfs')
    await initKuboRepo(bin, repo)
    const entries: string[] = []
    for (const size of SIZES) {
      const file = join(work, `file-${size}.bin`)
      await writeDeterministicFile(file, size, SEED)
      const cidV1 = await onlyHash(bin, repo, ['--cid-version=1', file])
      const cidV0 = await onlyHash(bin, repo, [file])
      const size1 = await kuboSize(bin, repo, file, cidV1)
      await rm(file)
      process.stderr.write(`${size}: ${cidV1} ${cidV0} Size=${size1}\n`)
      entries.push(
        [
          '  {',
          `    size: ${size},`,
          `    seed: '${SEED}',`,
          `    cidV1: '${cidV1}',`,
          `    cidV0: '${cidV0}',`,
          `    kuboSize: '${size1}',`,
          '  },',
        ].join('\n'),
      )
    }
    const dir = join(work, 'dir')
    await mkdir(dir)
    const paths: string[] = []
    for (const f of DIR_FILES) {
      const p = join(dir, f.name)
      await writeDeterministicFile(p, f.size, f.seed)
      paths.push(p)
    }
    const dirV1 = await onlyHash(bin, repo, ['--cid-version=1', '--wrap-with-directory', ...paths])
    const dirV0 = await onlyHash(bin, repo, ['--wrap-with-directory', ...paths])
    process.stderr.write(`dir: ${dirV1} ${dirV0}\n`)
    const files = DIR_FILES.map((f) => `      { name: '${f.name}', size: ${f.size}, seed: '${f.seed}' },`)
    const text = [
      `// Generated by tests/bench/kubo-vectors.ts from Kubo ${KUBO_VERSION} \`ipfs add --cid-version=1\` (and the`,
      '// CIDv0 default) with -Q --only-hash; do not edit by hand. To regenerate:',
      '//   make kubo build && KUBO_BIN=.tools/kubo-0.43.1/ipfs node tests/dist/bench/kubo-vectors.js --write',
      '// The bytes are deterministicChunks(size, seed) of tests/helpers/data.ts. kuboSize is the Size field',
      "// of Kubo's add output (the file's DAG size: its bytes plus UnixFS/dag-pb overhead).",
      '',
      'export interface KuboVector {',
      '  size: number',
      '  seed: string',
      '  cidV1: string',
      '  cidV0: string',
      '  kuboSize: string',
      '}',
      '',
      'export const KUBO_VECTORS: KuboVector[] = [',
      ...entries,
      ']',
      '',
      '/** `ipfs add --wrap-with-directory` of these files (each file is deterministicChunks(size, seed)). */',
      'export const KUBO_DIR_VECTORS: Array<{',
      '  files: Array<{ name: string; size: number; seed: string }>',
      '  cidV1: string',
      '  cidV0: string',
      '}> = [',
      '  {',
      '    files: [',
      ...files,
      '    ],',
      `    cidV1: '${dirV1}',`,
      `    cidV0: '${dirV0}',`,
      '  },',
      ']',
      '',
    ].join('\n')
    if (process.argv.includes('--write')) {
      const out = join(ROOT, 'tests', 'helpers', 'kubo-vectors.ts')
      await writeFile(out, text)
      process.stderr.write(`wrote ${out}\n`)
    } else {
      process.stdout.write(text)
    }
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`kubo-vectors: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exit(1)
  })
}
