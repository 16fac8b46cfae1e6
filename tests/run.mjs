#!/usr/bin/env node
// Runs every suite of `make test` (unit specs beside the code, then the cross-service tests) with
// node's test runner, prints the spec report, and ends with one line over all suites:
// "N passed, N failed" (", N skipped" when any were skipped).
import { globSync } from 'node:fs'
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
  const skipped = counts.skipped > 0 ? `, ${counts.skipped} skipped` : ''
  process.stdout.write(`\n${counts.passed} passed, ${counts.failed} failed${skipped}\n`)
  process.exitCode = counts.failed > 0 || counts.passed === 0 ? 1 : 0
})
stream.compose(tally).compose(spec).pipe(process.stdout)
