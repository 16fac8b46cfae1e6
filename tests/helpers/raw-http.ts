import { type ClientRequest, type IncomingHttpHeaders, request } from 'node:http'
import { connect, type Socket } from 'node:net'

export interface SimpleResponse {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

/**
 * An HTTP request from a chosen loopback address (127.0.0.x), so a test can act as several
 * clients: the gateway's per-client limits count by address when a request carries no token.
 */
export function httpFrom(
  url: string,
  opts: {
    method?: string
    headers?: Record<string, string>
    body?: Buffer | string
    localAddress?: string
  } = {},
): Promise<SimpleResponse> {
  const { req, response } = startRequest(url, opts)
  req.end(opts.body)
  return response
}

/** A request whose body the caller writes (slowly, or never); `response` settles when it answers. */
export function startRequest(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; localAddress?: string } = {},
): { req: ClientRequest; response: Promise<SimpleResponse> } {
  const u = new URL(url)
  const req = request({
    host: u.hostname,
    port: Number(u.port),
    path: `${u.pathname}${u.search}`,
    method: opts.method ?? 'GET',
    headers: opts.headers,
    localAddress: opts.localAddress,
    agent: false,
  })
  const response = new Promise<SimpleResponse>((resolve, reject) => {
    req.once('error', reject)
    req.once('response', (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      res.once('error', reject)
    })
  })
  return { req, response }
}

/** A raw connection: what the server sent, once it closes the connection (or after `timeoutMs`). */
export function rawConnection(
  url: string,
  timeoutMs = 20_000,
): { socket: Socket; received: Promise<{ text: string; closedByServer: boolean }> } {
  const { hostname, port } = new URL(url)
  const socket = connect(Number(port), hostname)
  const received = new Promise<{ text: string; closedByServer: boolean }>((resolve) => {
    let text = ''
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      socket.destroy()
    }, timeoutMs)
    socket.on('data', (d) => (text += d.toString('latin1')))
    socket.on('error', () => undefined)
    socket.on('close', () => {
      clearTimeout(timer)
      resolve({ text, closedByServer: !timedOut })
    })
  })
  return { socket, received }
}
