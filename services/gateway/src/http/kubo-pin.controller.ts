import { InvalidArgumentError } from '@mycel/core'
import { All, Controller, Inject, Req, Res } from '@nestjs/common'
import type { Request, Response } from 'express'
import { NodeApi } from '../pins/node-api.js'
import { type Query, queryBool, queryValue, rejectUnknownOptions } from '../upload/params.js'
import { requirePost } from './kubo-rpc.controller.js'

/** Sent by Kubo's HTTP clients on every call; the output shape is fixed per command. */
const CLIENT_OPTIONS = ['stream-channels', 'encoding']
const options = (...names: string[]) => new Set([...CLIENT_OPTIONS, ...names])
// kubo-rpc-client sends `stream` to pin/add as well; Kubo ignores it there, and so does Mycel.
const PIN_ADD_OPTIONS = options('arg', 'recursive', 'progress', 'name', 'stream', 'durability')
const PIN_RM_OPTIONS = options('arg', 'recursive')
// kubo-rpc-client also echoes its `paths` option (the same values as `arg`); Kubo ignores it.
const PIN_LS_OPTIONS = options('arg', 'type', 'quiet', 'stream', 'names', 'name', 'paths')

/**
 * Kubo RPC pin/add, pin/rm and pin/ls over the nodes' pin set (the nodes' public gRPC API, with
 * failover across them). Mycel's pins are recursive: `recursive=false` and the direct or
 * indirect listings are refused by name rather than answered wrongly.
 */
@Controller('api/v0')
export class KuboPinController {
  constructor(@Inject(NodeApi) private readonly api: NodeApi) {}

  /** `pin/add`: checks the whole DAG is stored, then pins; {"Pins":[…]}. */
  @All('pin/add')
  async add(@Req() req: Request, @Res() res: Response): Promise<void> {
    if (!requirePost(req, res)) return
    const query = req.query as Query
    rejectUnknownOptions(query, PIN_ADD_OPTIONS, 'pin/add')
    requireRecursive(query, 'pin/add')
    queryBool(query, 'stream', false)
    const progress = queryBool(query, 'progress', false)
    const args = argsOf(query, 'pin/add')
    const name = queryValue(query, 'name') ?? ''
    const durability = queryValue(query, 'durability') ?? ''
    const signal = abortOnClose(res)
    const pins: string[] = []
    let blocks = 0
    for (const arg of args) {
      const cid = await this.cidOf(arg, signal)
      const pinned = await this.api.client.pin(cid, { name, durability, signal })
      pins.push(pinned.cid)
      blocks += pinned.blocks
    }
    // The walk is one call per CID, so progress is reported once, with the blocks it checked.
    // With progress Kubo streams (X-Chunked-Output); without, it answers one value.
    if (progress) {
      const lines = [{ Progress: blocks }, { Pins: pins }].map((l) => JSON.stringify(l))
      res
        .status(200)
        .set('X-Chunked-Output', '1')
        .type('application/json')
        .send(`${lines.join('\n')}\n`)
      return
    }
    res.status(200).json({ Pins: pins })
  }

  /** `pin/rm`: {"Pins":[…]}; a CID that is not pinned is a 404 in Kubo's error shape. */
  @All('pin/rm')
  async rm(@Req() req: Request, @Res() res: Response): Promise<void> {
    if (!requirePost(req, res)) return
    const query = req.query as Query
    rejectUnknownOptions(query, PIN_RM_OPTIONS, 'pin/rm')
    requireRecursive(query, 'pin/rm')
    const signal = abortOnClose(res)
    const pins: string[] = []
    for (const arg of argsOf(query, 'pin/rm')) {
      pins.push((await this.api.client.unpin(await this.cidOf(arg, signal), { signal })).cid)
    }
    res.status(200).json({ Pins: pins })
  }

  /**
   * `pin/ls`: {"Keys":{cid:{"Type":"recursive"}}}, or with `stream=true` one
   * {"Cid","Type"} line per pin; `names` adds each pin's Name, `name` filters by it.
   */
  @All('pin/ls')
  async ls(@Req() req: Request, @Res() res: Response): Promise<void> {
    if (!requirePost(req, res)) return
    const query = req.query as Query
    rejectUnknownOptions(query, PIN_LS_OPTIONS, 'pin/ls')
    const type = queryValue(query, 'type') ?? 'all'
    if (type !== 'all' && type !== 'recursive') {
      if (type !== 'direct' && type !== 'indirect') {
        throw new InvalidArgumentError(`pin/ls: invalid type "${type}" (all, recursive, direct or indirect)`)
      }
      throw new InvalidArgumentError(
        `pin/ls: type=${type} is not supported: Mycel's pins are recursive (use type=recursive or all)`,
      )
    }
    const quiet = queryBool(query, 'quiet', false)
    const stream = queryBool(query, 'stream', false)
    const names = queryBool(query, 'names', false)
    const nameFilter = queryValue(query, 'name')
    const signal = abortOnClose(res)
    const args = argsOf(query, 'pin/ls', true)
    const cids = await Promise.all(args.map((a) => this.cidOf(a, signal)))
    let pins = await this.api.client.listPins({ cids, signal })
    if (nameFilter !== undefined) pins = pins.filter((p) => p.name.includes(nameFilter))
    const entry = (p: { name: string }) => ({
      Type: 'recursive',
      ...(names && !quiet ? { Name: p.name } : {}),
    })
    if (stream) {
      const lines = pins.map((p) => JSON.stringify({ Cid: p.cid, ...(quiet ? {} : entry(p)) }))
      res
        .status(200)
        .set('X-Chunked-Output', '1')
        .type('application/json')
        .send(lines.length > 0 ? `${lines.join('\n')}\n` : '')
      return
    }
    res.status(200).json({ Keys: Object.fromEntries(pins.map((p) => [p.cid, entry(p)])) })
  }

  /** A CID argument, or a path under one (resolved to the CID it names, as Kubo pins it). */
  private async cidOf(arg: string, signal: AbortSignal): Promise<string> {
    const text = arg.startsWith('/ipfs/') ? arg.slice('/ipfs/'.length) : arg
    if (!text.includes('/')) return text
    return (await this.api.client.stat(arg, { signal })).cid
  }
}

function requireRecursive(query: Query, command: string): void {
  if (!queryBool(query, 'recursive', true)) {
    throw new InvalidArgumentError(`${command}: only recursive pins are supported (recursive=true)`)
  }
}

function argsOf(query: Query, command: string, optional = false): string[] {
  const v = query.arg
  const args = v === undefined ? [] : (Array.isArray(v) ? v : [v]).map(String)
  if (args.length === 0 && !optional) throw new InvalidArgumentError(`${command}: argument "arg" is required`)
  return args
}

function abortOnClose(res: Response): AbortSignal {
  const abort = new AbortController()
  res.on('close', () => {
    if (!res.writableFinished) abort.abort(new Error('client disconnected'))
  })
  return abort.signal
}
