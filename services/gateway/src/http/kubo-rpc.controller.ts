import { VERSION } from '@mycel/core'
import { All, Controller, Inject, Req, Res } from '@nestjs/common'
import type { Request, Response } from 'express'
import { GatewayRuntime } from '../gateway-runtime.js'
import { createPeerIdentity } from './peer-identity.js'

/** Kubo RPC commands other than add: version and id (the rest arrive with IPFS compatibility). */
@Controller('api/v0')
export class KuboRpcController {
  private readonly identity = createPeerIdentity()

  constructor(@Inject(GatewayRuntime) private readonly runtime: GatewayRuntime) {}

  @All('version')
  version(@Req() req: Request, @Res() res: Response): void {
    if (!requirePost(req, res)) return
    res.json({
      Version: VERSION,
      Commit: '',
      Repo: '',
      System: `${process.arch}/${process.platform}`,
      Golang: '',
    })
  }

  @All('id')
  id(@Req() req: Request, @Res() res: Response): void {
    if (!requirePost(req, res)) return
    res.json({
      ID: this.identity.id,
      PublicKey: this.identity.publicKey,
      Addresses: [],
      AgentVersion: `mycel/${VERSION}`,
      Protocols: [],
      Nodes: this.runtime.nodeStatuses().map((n) => ({ Address: n.address, State: n.state, ID: n.id })),
    })
  }
}

/** Kubo's RPC accepts only POST (since 0.5, against CSRF); so does Mycel. */
export function requirePost(req: Request, res: Response): boolean {
  if (req.method === 'POST') return true
  res
    .status(405)
    .set('Allow', 'POST')
    .json({ Message: `${req.method} not allowed: the RPC API takes POST`, Code: 0, Type: 'error' })
  return false
}
