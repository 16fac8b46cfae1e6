import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { ImportedEntry } from '@mycel/cluster'
import { CID } from '@mycel/core'
import { addOutput, withEmptyDirectories } from './add-output.js'

const file = CID.parse('bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku')
const dir = CID.parse('bafybeicw6hcfox6lsbxckzhauwu32d3jqbhhynjvfhdamu7yjk53xlvo6u')
const entry = (path: string, cid = file): ImportedEntry => ({ path, cid, size: 0n })

describe('add output (Kubo parity)', () => {
  it('reports empty directories before their parent, with the empty directory CID of the version', async () => {
    const entries = [entry('site/a.txt'), entry('site', dir)]
    const v1 = await withEmptyDirectories(entries, ['site', 'site/empty/'], 1)
    assert.deepEqual(
      v1.map((e) => [e.path, e.cid.toString(), e.size]),
      [
        ['site/a.txt', file.toString()],
        ['site/empty', 'bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354', 4n],
        ['site', dir.toString()],
      ].map(([p, c, s]) => [p, c, s ?? 0n]),
    )
    const v0 = await withEmptyDirectories(entries, ['site/empty'], 0)
    assert.equal(v0[1]?.cid.toString(), 'QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn')
    assert.equal(await withEmptyDirectories(entries, ['site'], 1), entries)
  })
  it('silent keeps only directory lines, as Kubo answers', () => {
    const entries = [
      entry('site/a.txt'),
      entry('site/empty', dir),
      entry('site/sub/b'),
      entry('site/sub', dir),
      entry('site', dir),
    ]
    assert.deepEqual(
      addOutput(entries, true, ['site/empty']).map((e) => e.path),
      ['site/empty', 'site/sub', 'site'],
    )
    assert.equal(addOutput(entries, false, []), entries)
  })
})
