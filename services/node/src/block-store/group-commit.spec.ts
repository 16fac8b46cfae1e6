import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { StoreUnavailableError } from '@mycel/core'
import { GroupCommit } from './group-commit.js'

interface Op {
  n: number
  resolve: () => void
  reject: (err: Error) => void
}

const op = (n: number) => {
  let resolve!: () => void
  let reject!: (err: Error) => void
  const done = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { op: { n, resolve, reject } as Op, done }
}

describe('GroupCommit', () => {
  it('commits what was queued in one tick as one batch, without a committed hook too', async () => {
    const batches: number[][] = []
    const commits = new GroupCommit<Op>(
      async (ops) => {
        batches.push(ops.map((o) => o.n))
        for (const o of ops) o.resolve()
      },
      { failed: () => assert.fail('no batch fails') },
    )
    const ops = [op(1), op(2), op(3)]
    for (const o of ops) commits.enqueue(o.op)
    await Promise.all(ops.map((o) => o.done))
    await commits.idle()
    assert.deepEqual(batches, [[1, 2, 3]])
  })

  it('reports a failed batch and rejects each of its operations as unavailable', async () => {
    const committed: boolean[] = []
    const failed: number[] = []
    const commits = new GroupCommit<Op, boolean>(
      async (ops) => {
        if (ops.some((o) => o.n === 2)) throw new Error('disk full')
        for (const o of ops) o.resolve()
        return true
      },
      { committed: (wrote) => committed.push(wrote), failed: (_err, ops) => failed.push(ops.length) },
    )
    const bad = op(2)
    commits.enqueue(bad.op)
    await assert.rejects(
      bad.done,
      (err) => err instanceof StoreUnavailableError && /disk full/.test(err.message),
    )
    const good = op(3)
    commits.enqueue(good.op)
    await good.done
    await commits.idle()
    assert.deepEqual(failed, [1])
    assert.deepEqual(committed, [true])
  })
})
