import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** The IPFS gateway-conformance suite, vendored as a tarball (see /work/shared/vendor/README.md). */
export const CONFORMANCE_VERSION = 'v0.13.2'
export const CONFORMANCE_TARBALL =
  process.env.MYCEL_CONFORMANCE_TARBALL ??
  join(process.cwd(), '..', 'shared', 'vendor', `gateway-conformance-${CONFORMANCE_VERSION}.tar.gz`)
/** Unpacked source and built binary live under .tools (git-ignored, kept between runs). */
export const CONFORMANCE_DIR = join(process.cwd(), '.tools', `gateway-conformance-${CONFORMANCE_VERSION}`)
export const CONFORMANCE_HOME = join(CONFORMANCE_DIR, 'gateway-conformance')
export const CONFORMANCE_BIN = join(CONFORMANCE_DIR, 'bin', 'gateway-conformance')

async function go(args: string[], cwd: string): Promise<void> {
  // GOPATH / GOCACHE stay at their defaults so the module and build caches are shared and reused.
  await run('go', args, { cwd, maxBuffer: 64 * 1024 * 1024 })
}

/**
 * Unpacks the suite if needed, builds its binary with the documented ldflags (skipped when
 * built) and compiles its tests once (`go test -c`), which fills Go's build cache so the `test`
 * command, which runs `go test` over the source, does not compile from scratch.
 */
export async function ensureConformanceTool(log: (msg: string) => void): Promise<void> {
  if (!existsSync(join(CONFORMANCE_HOME, 'go.mod'))) {
    if (!existsSync(CONFORMANCE_TARBALL))
      throw new Error(`conformance suite not found at ${CONFORMANCE_TARBALL}`)
    log(`unpacking ${CONFORMANCE_TARBALL}`)
    await rm(CONFORMANCE_HOME, { recursive: true, force: true })
    await mkdir(CONFORMANCE_DIR, { recursive: true })
    await run('tar', ['-xzf', CONFORMANCE_TARBALL, '-C', CONFORMANCE_DIR])
  }
  const warmed = join(CONFORMANCE_DIR, '.warmed')
  if (!existsSync(CONFORMANCE_BIN)) {
    log('building gateway-conformance (go build)')
    await mkdir(join(CONFORMANCE_DIR, 'bin'), { recursive: true })
    const tmp = `${CONFORMANCE_BIN}.tmp`
    await go(
      [
        'build',
        `-ldflags=-X github.com/ipfs/gateway-conformance/tooling.Version=${CONFORMANCE_VERSION}`,
        '-o',
        tmp,
        './cmd/gateway-conformance',
      ],
      CONFORMANCE_HOME,
    )
    await rename(tmp, CONFORMANCE_BIN)
    await rm(warmed, { force: true })
  }
  if (!existsSync(warmed)) {
    log('warming the Go build cache (go test -c ./tests)')
    await go(['test', '-c', '-o', '/dev/null', './tests'], CONFORMANCE_HOME)
    await writeFile(warmed, `${new Date().toISOString()}\n`)
  }
}

export async function extractFixtures(dir: string): Promise<string> {
  await run(CONFORMANCE_BIN, ['extract-fixtures', '--directory', dir, '--merged'], {
    env: { ...process.env, GATEWAY_CONFORMANCE_HOME: CONFORMANCE_HOME },
    maxBuffer: 64 * 1024 * 1024,
  })
  return join(dir, 'fixtures.car')
}

/** Runs the suite; a non-zero exit (some subtest failed) is expected and not an error here. */
export async function runConformance(opts: {
  gatewayUrl: string
  specs: string
  jsonOut: string
  timeoutMs: number
}): Promise<void> {
  try {
    await run(
      CONFORMANCE_BIN,
      // After "--": arguments for `go test`; -count=1 so a result is never replayed from Go's test cache.
      [
        'test',
        '--gateway-url',
        opts.gatewayUrl,
        '--specs',
        opts.specs,
        '--json-output',
        opts.jsonOut,
        '--',
        '-count=1',
      ],
      {
        cwd: CONFORMANCE_HOME,
        env: { ...process.env, GATEWAY_CONFORMANCE_HOME: CONFORMANCE_HOME },
        maxBuffer: 256 * 1024 * 1024,
        timeout: opts.timeoutMs,
      },
    )
  } catch (err) {
    if (!existsSync(opts.jsonOut)) throw err
  }
}

export type Outcome = 'pass' | 'fail' | 'skip'

/**
 * Leaf subtests of `go test -json` output with their last pass/fail/skip action. A test is a leaf
 * when no other test's name starts with its name followed by "/".
 */
export async function leafOutcomes(jsonOut: string): Promise<Map<string, Outcome>> {
  const last = new Map<string, Outcome>()
  for (const line of (await readFile(jsonOut, 'utf8')).split('\n')) {
    if (!line.startsWith('{')) continue
    let ev: { Action?: string; Test?: string }
    try {
      ev = JSON.parse(line) as { Action?: string; Test?: string }
    } catch {
      continue
    }
    if (ev.Test === undefined) continue
    if (ev.Action === 'pass' || ev.Action === 'fail' || ev.Action === 'skip') last.set(ev.Test, ev.Action)
    else if (!last.has(ev.Test) && ev.Action === 'run') last.set(ev.Test, 'fail')
  }
  const names = [...last.keys()].sort()
  const leaves = new Map<string, Outcome>()
  for (let i = 0; i < names.length; i++) {
    const name = names[i] as string
    const hasChild = names.some((other) => other.startsWith(`${name}/`))
    if (!hasChild) leaves.set(name, last.get(name) as Outcome)
  }
  return leaves
}

/** The suite's top-level tests named TestTrustless* belong to the trustless gateway specs. */
export function specOf(test: string): 'trustless-gateway' | 'path-gateway' {
  return test.startsWith('TestTrustless') ? 'trustless-gateway' : 'path-gateway'
}
