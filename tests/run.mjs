#!/usr/bin/env node
// Runs every suite of `make test` (unit specs beside the code, then the cross-service tests) with
// node's test runner, prints the spec report, and ends with one line over all suites:
// "N passed, N failed" (", N skipped" when any were skipped). Results of checks that run outside
// node (the chart's helm-unittest and kubeconform, `make chart-test`) are added to that line when
// MYCEL_EXTRA_RESULTS names a file of lines "suite-name passed N failed N"; a missing or
// unreadable file counts as one failure.
import { globSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { Transform } from 'node:stream'
import { run } from 'node:test'
import { spec } from 'node:test/reporters'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const filter = process.argv.slice(2)
const files = [
  ...globSync('services/*/dist/**/*.spec.js', { cwd: root }),
  ...globSync('tests/dist/**/*.test.js', { cwd: root }),
]
  .filter((f) => filter.length === 0 || filter.some((p) => f.includes(p)))
  .map((f) => join(root, f))

const counts = { passed: 0, failed: 0, skipped: 0 }
const tally = new Transform({
  objectMode: true,
  transform(event, _enc, done) {
    const details = event.data?.details
    // Count leaf tests only: a suite's own pass/fail event repeats its children's results.
    if (details && details.type !== 'suite') {
      if (event.type === 'test:pass') {
        if (event.data.skip || event.data.todo) counts.skipped++
        else counts.passed++
      } else if (event.type === 'test:fail') {
        counts.failed++
      }
    }
    done(null, event)
  },
})

// Suites start clusters of real processes on loopback; one file at a time keeps 2 cores honest.
const stream = run({ files, concurrency: 1, timeout: 20 * 60_000 })
stream.on('end', () => {
  addExtraResults(process.env.MYCEL_EXTRA_RESULTS)
  const skipped = counts.skipped > 0 ? `, ${counts.skipped} skipped` : ''
  process.stdout.write(`\n${counts.passed} passed, ${counts.failed} failed${skipped}\n`)
  process.exitCode = counts.failed > 0 || counts.passed === 0 ? 1 : 0
})

function addExtraResults(file) {
  if (!file) return
  let text
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    process.stdout.write(
      `\nextra results: cannot read ${file} (${err.code ?? err.message}): counted as 1 failed\n`,
    )
    counts.failed++
    return
  }
  for (const line of text.split('\n')) {
    const m = /^(\S+) passed (\d+) failed (\d+)$/.exec(line.trim())
    if (!m) {
      if (line.trim() !== '') {
        process.stdout.write(`\nextra results: malformed line "${line}" in ${file}: counted as 1 failed\n`)
        counts.failed++
      }
      continue
    }
    process.stdout.write(`\n${m[1]}: ${m[2]} passed, ${m[3]} failed`)
    counts.passed += Number(m[2])
    counts.failed += Number(m[3])
  }
  process.stdout.write('\n')
}

stream.compose(tally).compose(spec).pipe(process.stdout)
