import assert from 'node:assert/strict'
import { randomBytes, X509Certificate } from 'node:crypto'
import { copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { connect } from 'node:tls'
import { type ChannelOptions, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js'
import { ServiceProcess, tlsEnvFor } from '@mycel/cli'
import type { BlockServiceClient } from '@mycel/proto'
import { freePortRange, startCluster, TEST_TMP, type TestCluster } from '../helpers/cluster.js'
import { getBlock, hasBlocks, putBlocks, rawBlock } from '../helpers/grpc.js'
import { rawUpload } from '../helpers/http.js'
import { eventually } from '../helpers/poll.js'
import { makeCerts, tlsBlockClient, tlsCredentials } from '../helpers/tls.js'

/** The serial number of the certificate the server at `address` presents now. */
function serverCertSerial(address: string, caDir: string): Promise<string> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.split(':').pop())]
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host, port, ca: readFileSync(join(caDir, 'ca.crt')), ALPNProtocols: ['h2'] },
      () => {
        resolve(socket.getPeerCertificate().serialNumber)
        socket.destroy()
      },
    )
    socket.once('error', reject)
  })
}

function serialOf(certFile: string): string {
  return new X509Certificate(readFileSync(certFile)).serialNumber
}

describe('mutual TLS between cluster processes', () => {
  let cluster: TestCluster
  let tlsDir: string
  let foreignDir: string
  let tmp: string
  const clients: BlockServiceClient[] = []
  const client = (creds: Parameters<typeof tlsBlockClient>[1], i = 0) => {
    const c = tlsBlockClient(cluster.nodeAddress(i), creds)
    clients.push(c)
    return c
  }

  before(async () => {
    mkdirSync(TEST_TMP, { recursive: true })
    tmp = await mkdtemp(join(TEST_TMP, 'mtls-'))
    tlsDir = join(tmp, 'cluster')
    foreignDir = join(tmp, 'foreign')
    makeCerts(tlsDir, 2)
    makeCerts(foreignDir, 1)
    cluster = await startCluster({ nodes: 2, tlsDir })
  })
  after(async () => {
    for (const c of clients) c.close()
    await cluster?.destroy()
    rmSync(tmp, { recursive: true, force: true })
  })

  it('gateway and nodes work together over mutual TLS', async () => {
    const bytes = randomBytes(300_000)
    const up = await rawUpload(cluster.gatewayUrl, bytes)
    assert.equal(up.status, 201, up.text)
    const back = await fetch(`${cluster.gatewayUrl}/ipfs/${up.body.cid}`)
    assert.equal(back.status, 200)
    assert.ok(Buffer.from(await back.arrayBuffer()).equals(bytes))
  })

  it('a node certificate from the cluster CA can put and fetch blocks', async () => {
    const c = client(tlsCredentials(tlsDir, 'node-1'))
    const b = rawBlock(randomBytes(5000))
    const { acks, error } = await putBlocks(c, [b])
    assert.equal(error, undefined)
    assert.equal(acks[0]?.errorCode, '')
    assert.ok((await getBlock(c, b.cid)).equals(b.bytes))
  })

  it('a client without a certificate cannot call any internal RPC (but health answers)', async () => {
    const c = client(tlsCredentials(tlsDir))
    const b = rawBlock(randomBytes(100))
    await assert.rejects(getBlock(c, b.cid), { code: status.UNAUTHENTICATED })
    await assert.rejects(hasBlocks(c, [b.cid]), { code: status.UNAUTHENTICATED })
    const put = await putBlocks(c, [b])
    assert.equal(put.error?.code, status.UNAUTHENTICATED)
    assert.equal(put.acks.length, 0)
    await assert.rejects(
      new Promise((resolve, reject) => c.getNodeStats({}, (err, res) => (err ? reject(err) : resolve(res)))),
      { code: status.UNAUTHENTICATED },
    )
    // Nothing was stored: a valid peer does not find it.
    const valid = client(tlsCredentials(tlsDir, 'node-1'))
    assert.deepEqual(await hasBlocks(valid, [b.cid]), [false])
    const { grpc } = (await import('@grpc/grpc-js')).loadPackageDefinition(
      (await import('@grpc/proto-loader')).loadSync(
        ((await import('grpc-health-check')) as unknown as { protoPath: string }).protoPath,
      ),
    ) as unknown as { grpc: { health: { v1: { Health: new (a: string, c: unknown) => HealthStub } } } }
    const health = new grpc.health.v1.Health(cluster.nodeAddress(0), tlsCredentials(tlsDir))
    const res = await new Promise<{ status: number }>((resolve, reject) =>
      health.check({ service: '' }, new Metadata(), (err, r) => (err ? reject(err) : resolve(r))),
    )
    assert.equal(res.status, 1)
    health.close()
  })

  it('a certificate from another CA cannot put or fetch blocks', async () => {
    const stored = rawBlock(randomBytes(1000))
    await putBlocks(client(tlsCredentials(tlsDir, 'node-1')), [stored])
    // Trusts the cluster CA (so the handshake completes) but presents a foreign node certificate.
    const c = client(tlsCredentials(tlsDir, 'node-0', foreignDir))
    await assert.rejects(getBlock(c, stored.cid), { code: status.UNAUTHENTICATED })
    const b = rawBlock(randomBytes(100))
    const put = await putBlocks(c, [b])
    assert.equal(put.error?.code, status.UNAUTHENTICATED)
    assert.deepEqual(await hasBlocks(client(tlsCredentials(tlsDir, 'node-1')), [b.cid]), [false])
  })

  it('a gateway with a certificate from another CA cannot read or write', async () => {
    const port = await freePortRange(1)
    const foreignGateway = (caFile: string) =>
      new ServiceProcess(
        'foreign-gateway',
        'gateway',
        {
          MYCEL_PEERS: [cluster.nodeAddress(0), cluster.nodeAddress(1)].join(','),
          MYCEL_GATEWAY_LISTEN: `127.0.0.1:${port}`,
          MYCEL_RPC_LISTEN: 'off',
          MYCEL_REPLICATION: '2',
          MYCEL_TLS_CERT_FILE: join(foreignDir, 'gateway.crt'),
          MYCEL_TLS_KEY_FILE: join(foreignDir, 'gateway.key'),
          MYCEL_TLS_CA_FILE: caFile,
          MYCEL_AUTH: 'off',
          MYCEL_LOG_LEVEL: 'error',
        },
        join(tmp, 'foreign-gateway.log'),
        60_000,
      )
    // Its own check refuses a certificate that the CA it trusts did not issue, at startup.
    await assert.rejects(foreignGateway(join(tlsDir, 'ca.crt')).start(), /not issued by the CA/)
    // Trusting both CAs, it starts; the nodes refuse every call it makes.
    const bundle = join(tmp, 'both-cas.crt')
    writeFileSync(
      bundle,
      Buffer.concat([readFileSync(join(tlsDir, 'ca.crt')), readFileSync(join(foreignDir, 'ca.crt'))]),
    )
    const gateway = foreignGateway(bundle)
    await gateway.start()
    try {
      const url = `http://127.0.0.1:${port}`
      const state = (await (await fetch(`${url}/mycel/v1/status`)).json()) as {
        nodesUp: number
        nodes: Array<{ error?: string }>
        membership: { known: boolean }
      }
      // The nodes refuse its membership watch too, so it learns of no node at all.
      assert.equal(state.nodesUp, 0)
      assert.equal(state.membership.known, false)
      for (const n of state.nodes) assert.match(n.error ?? '', /cluster CA/)
      assert.equal((await fetch(`${url}/readyz`)).status, 503)
      const up = await rawUpload(url, randomBytes(1000))
      assert.equal(up.status, 503, up.text)
      const stored = await rawUpload(cluster.gatewayUrl, randomBytes(1000))
      assert.equal(stored.status, 201)
      assert.notEqual((await fetch(`${url}/ipfs/${stored.body.cid}`)).status, 200)
    } finally {
      await gateway.stop()
    }
  })

  it('a plaintext client cannot connect at all', async () => {
    const c = client(credentials.createInsecure())
    await assert.rejects(getBlock(c, rawBlock(randomBytes(10)).cid), { code: status.UNAVAILABLE })
  })

  it('clients refuse a node from another CA, and a gateway certificate cannot serve as a node', async () => {
    const refused = async (certDir: string, name: string, reason: RegExp, options: ChannelOptions = {}) => {
      const [grpcPort, adminPort] = [await freePortRange(1), await freePortRange(1)]
      const rogue = new ServiceProcess(
        `rogue-${name}`,
        'node',
        {
          MYCEL_DATA_DIR: join(tmp, `rogue-${name}`),
          MYCEL_GRPC_LISTEN: `127.0.0.1:${grpcPort}`,
          MYCEL_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
          ...tlsEnvFor(certDir, name),
          MYCEL_LOG_LEVEL: 'warn',
        },
        join(tmp, `rogue-${name}.log`),
        60_000,
      )
      await rogue.start()
      try {
        // A cluster member dialing it (its own certificate and the cluster CA) refuses the handshake.
        const c = tlsBlockClient(`127.0.0.1:${grpcPort}`, tlsCredentials(tlsDir, 'node-0'), options)
        clients.push(c)
        await assert.rejects(getBlock(c, rawBlock(randomBytes(10)).cid), (err: ServiceError) => {
          assert.equal(err.code, status.UNAVAILABLE)
          assert.match(err.details, reason)
          return true
        })
      } finally {
        await rogue.stop()
      }
    }
    await refused(foreignDir, 'node-0', /unable to verify|self[- ]signed|certificate/i)
    // Issued by the cluster CA, name matching, but for client authentication only.
    await refused(tlsDir, 'gateway', /unsuitable certificate purpose|purpose/i, {
      'grpc.ssl_target_name_override': 'mycel-gateway',
    })
  })

  it('reloads a rotated node certificate and a new CA bundle without a restart', async () => {
    const pid = cluster.nodes[0]?.pid
    // A new certificate for node-0 from the same CA, swapped in under the watched names.
    const next = join(tmp, 'next')
    mkdirSync(next)
    copyFileSync(join(tlsDir, 'ca.crt'), join(next, 'ca.crt'))
    copyFileSync(join(tlsDir, 'ca.key'), join(next, 'ca.key'))
    makeCerts(next, 1)
    const newSerial = serialOf(join(next, 'node-0.crt'))
    assert.notEqual(newSerial, serialOf(join(tlsDir, 'node-0.crt')))
    renameSync(join(next, 'node-0.key'), join(tlsDir, 'node-0.key'))
    renameSync(join(next, 'node-0.crt'), join(tlsDir, 'node-0.crt'))
    await eventually(
      async () => (await serverCertSerial(cluster.nodeAddress(0), tlsDir)) === newSerial,
      'node-0 to serve its new certificate',
    )

    // A second CA joins the bundle: its certificates are accepted from then on.
    const second = join(tmp, 'second')
    makeCerts(second, 1)
    const fromSecond = client(tlsCredentials(tlsDir, 'node-0', second), 1)
    const b = rawBlock(randomBytes(100))
    await assert.rejects(getBlock(fromSecond, b.cid), { code: status.UNAUTHENTICATED })
    const bundle = Buffer.concat([readFileSync(join(tlsDir, 'ca.crt')), readFileSync(join(second, 'ca.crt'))])
    writeFileSync(join(tmp, 'bundle.tmp'), bundle)
    renameSync(join(tmp, 'bundle.tmp'), join(tlsDir, 'ca.crt'))
    await eventually(async () => {
      const c = client(tlsCredentials(tlsDir, 'node-0', second), 1)
      const { acks } = await putBlocks(c, [b])
      return acks[0]?.errorCode === ''
    }, 'node-1 to accept certificates of the second CA')
    assert.equal(cluster.nodes[0]?.pid, pid, 'no restart')
    // The gateway still reaches both nodes.
    const up = await rawUpload(cluster.gatewayUrl, randomBytes(1000))
    assert.equal(up.status, 201, up.text)
  })
})

interface HealthStub {
  check(req: { service: string }, md: Metadata, cb: (err: Error | null, r: { status: number }) => void): void
  close(): void
}
