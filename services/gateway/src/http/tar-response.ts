import { type CID, isAbortError, NotAcceptableError } from '@mycel/core'
import type { Request, Response } from 'express'
import type { UnixFSEntry } from 'ipfs-unixfs-exporter'
import type { GatewayRuntime } from '../gateway-runtime.js'
import { type TarSource, tarStream } from '../ipld/tar.js'
import { contentDisposition } from './content-type.js'
import { etagMatches, streamHeld } from './respond.js'
import { TAR_MEDIA_TYPE } from './trustless.js'

/**
 * TAR bytes held back before the status goes out: a tree whose first entries fail (a name
 * outside the root, a missing block) is answered with an error status rather than a broken 200.
 */
export const TAR_HOLD_BYTES = 64 * 1024

export function refuseTar(cid: CID): never {
  throw new NotAcceptableError(
    `format=tar is for UnixFS files and directories; ${cid.toString()} is an IPLD document (use its own format or ?format=car)`,
  )
}

/**
 * `?format=tar` / `Accept: application/x-tar` on the path gateway: the file or directory tree at
 * the end of the path, named by its CID inside the archive, as Kubo serves it. The ETag is weak
 * (entries without a UnixFS mtime carry the time of the request). A failure after the status
 * went out cuts the connection, as the path gateway does for every streamed body.
 */
export async function serveTar(
  runtime: GatewayRuntime,
  entry: UnixFSEntry,
  store: TarSource,
  req: Request,
  res: Response,
  signal: AbortSignal,
): Promise<void> {
  const cid = entry.cid.toString()
  const etag = `W/"${cid}.x-tar"`
  const asked =
    typeof req.query.filename === 'string' && req.query.filename !== '' ? req.query.filename : undefined
  res.setHeader('Content-Type', TAR_MEDIA_TYPE)
  res.set({ Etag: etag, 'Content-Disposition': contentDisposition('attachment', asked ?? `${cid}.tar`) })
  if (etagMatches(req.headers['if-none-match'], etag)) {
    res.status(304).end()
    return
  }
  if (req.method === 'HEAD') {
    res.status(200).end()
    return
  }
  await streamHeld(res, tarStream(entry, cid, store as TarSource, { signal }), {
    hold: TAR_HOLD_BYTES,
    commit: () => {
      res.status(200)
    },
    lateError: (err) => {
      if (!isAbortError(err) && !signal.aborted) {
        runtime.log.warn({ cid, err: String(err) }, 'TAR response failed mid-stream')
      }
      res.destroy()
    },
  })
}
