import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { connect, createServer, type Server, type Socket } from 'node:net'

/**
 * A network link of one node that a test can cut and restore: a partition without network
 * namespaces. Everything that reaches the node goes through `ingress` (a TCP forwarder; the node
 * advertises its address, so peers and the gateway dial it), and everything the node dials goes
 * through `egress` (an HTTP CONNECT proxy that grpc-js uses when the node runs with
 * `grpc_proxy=http://…`). `cut()` makes both a black hole: connections stay open but no byte
 * moves and new connections are accepted but not carried, as when packets are dropped; nothing is
 * refused, so peers see timeouts, not resets. `restore()` lets traffic flow again.
 */
export class NodeLink {
  private open = true
  private readonly pairs = new Set<[Socket, Socket]>()
  private readonly held: Array<() => void> = []
  private ingressServer: Server | undefined
  private egressServer: HttpServer | undefined
  ingressAddress = ''
  egressUrl = ''

  /** Starts both proxies on free loopback ports; ingress forwards to `target` (host:port). */
  static async start(target: string): Promise<NodeLink> {
    const link = new NodeLink()
    await link.listen(target)
    return link
  }

  get isCut(): boolean {
    return !this.open
  }

  cut(): void {
    this.open = false
    for (const [a, b] of this.pairs) {
      a.pause()
      b.pause()
    }
  }

  restore(): void {
    this.open = true
    for (const [a, b] of this.pairs) {
      a.resume()
      b.resume()
    }
    for (const run of this.held.splice(0)) run()
  }

  async close(): Promise<void> {
    for (const [a, b] of this.pairs) {
      a.destroy()
      b.destroy()
    }
    this.pairs.clear()
    await Promise.all([
      new Promise<void>((r) => (this.ingressServer ? this.ingressServer.close(() => r()) : r())),
      new Promise<void>((r) => (this.egressServer ? this.egressServer.close(() => r()) : r())),
    ])
  }

  private async listen(target: string): Promise<void> {
    const i = target.lastIndexOf(':')
    const host = target.slice(0, i)
    const port = Number(target.slice(i + 1))
    this.ingressServer = createServer((client) => {
      const upstream = connect(port, host)
      this.relay(client, upstream)
    })
    this.egressServer = createHttpServer((_req, res) => res.writeHead(405).end())
    this.egressServer.on('connect', (req, client: Socket, head: Buffer) => {
      const start = () => {
        if (client.destroyed) return
        const to = req.url ?? ''
        const j = to.lastIndexOf(':')
        const upstream = connect(Number(to.slice(j + 1)), to.slice(0, j).replace(/^\[|\]$/g, ''), () => {
          client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
          if (head.length > 0) upstream.write(head)
          this.relay(client, upstream)
        })
        upstream.on('error', () => {
          if (!client.destroyed) client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n')
        })
      }
      // A new connection during a cut is held, unanswered, until the link is restored.
      if (this.open) start()
      else this.held.push(start)
    })
    this.ingressAddress = `127.0.0.1:${await listenOn(this.ingressServer)}`
    this.egressUrl = `http://127.0.0.1:${await listenOn(this.egressServer)}`
  }

  private relay(a: Socket, b: Socket): void {
    const pair: [Socket, Socket] = [a, b]
    this.pairs.add(pair)
    const forward = (from: Socket, to: Socket) => {
      from.on('data', (chunk: Buffer) => {
        if (!to.write(chunk)) {
          from.pause()
          to.once('drain', () => {
            if (this.open) from.resume()
          })
        }
      })
      from.on('end', () => to.end())
    }
    forward(a, b)
    forward(b, a)
    const close = () => {
      this.pairs.delete(pair)
      a.destroy()
      b.destroy()
    }
    for (const s of pair) {
      s.on('error', close)
      s.on('close', close)
    }
    if (!this.open) {
      a.pause()
      b.pause()
    }
  }
}

function listenOn(server: Server | HttpServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const a = server.address()
      resolve(typeof a === 'object' && a !== null ? a.port : 0)
    })
  })
}
