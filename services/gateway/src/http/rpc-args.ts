import { InvalidArgumentError } from '@mycel/core'
import type { Response } from 'express'
import { type Query, queryValue } from '../upload/params.js'

/** Sent by Kubo's HTTP clients on every call; Mycel's output format is fixed per command. */
export const CLIENT_OPTIONS = ['stream-channels', 'encoding']
export const options = (...names: string[]) => new Set([...CLIENT_OPTIONS, ...names])

/** All values of a query parameter (Kubo repeats `arg`). */
export function queryValues(query: Query, name: string): string[] {
  const v = query[name]
  if (v === undefined) return []
  return (Array.isArray(v) ? v : [v]).map(String)
}

export function singleArg(query: Query, command: string): string {
  const args = queryValues(query, 'arg')
  if (args.length === 0) throw new InvalidArgumentError(`${command}: argument "arg" is required`)
  if (args.length > 1) throw new InvalidArgumentError(`${command}: takes one argument, got ${args.length}`)
  return args[0] as string
}

export function nonNegativeInt(query: Query, name: string, fallback: number): number {
  const v = queryValue(query, name)
  if (v === undefined) return fallback
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
    throw new InvalidArgumentError(`option "${name}" must be a non-negative integer (got "${v}")`)
  }
  return Number(v)
}

/** Aborts the command's work when the client goes away before the response is complete. */
export function abortOnClose(res: Response): AbortController {
  const abort = new AbortController()
  res.on('close', () => {
    if (!res.writableFinished) abort.abort(new Error('client disconnected'))
  })
  return abort
}
