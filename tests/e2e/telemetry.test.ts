import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { deterministicBytes } from '../helpers/data.js'
import { rawUpload } from '../helpers/http.js'
import { type CollectedSpan, type Collector, startCollector } from '../helpers/otel-collector.js'
import { poll } from '../helpers/poll.js'

const SPAN_KIND_SERVER = 2
const SPAN_KIND_CLIENT = 3
const R = 3

/**
 * Traces through a real OpenTelemetry Collector (built by `make otelcol`), configured only by the
 * standard OTEL_* variables: the nodes export over OTLP/gRPC, the gateway over OTLP/HTTP
 * (http/protobuf, the default), so both exporters are exercised.
 */
describe('telemetry: one trace per upload, across the gateway and the nodes', () => {
  let collector: Collector
  let cluster: TestCluster

  before(async () => {
    collector = await startCollector()
    cluster = await startCluster({
      nodes: R,
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.grpcEndpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        // Export within a fraction of a second instead of the default 5 s.
        OTEL_BSP_SCHEDULE_DELAY: '100',
        MYCEL_LOG_LEVEL: 'info',
      },
      gatewayEnv: {
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.httpEndpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      },
    })
  })

  after(async () => {
    await cluster?.destroy()
    await collector?.stop()
  })

  /** The gateway's HTTP server span of a request, once the collector has it. */
  function requestSpan(what: string, name: (spanName: string) => boolean): Promise<CollectedSpan> {
    return poll(`the gateway's ${what} request span at the collector`, 60_000, async () =>
      (await collector.spans()).find(
        (s) => s.service === 'mycel-gateway' && s.kind === SPAN_KIND_SERVER && name(s.name),
      ),
    )
  }

  /** Polls the collector until `done` holds for the spans of `traceId`. */
  async function traceOf(
    traceId: string,
    done: (spans: CollectedSpan[]) => boolean,
  ): Promise<CollectedSpan[]> {
    const until = Date.now() + 60_000
    let spans: CollectedSpan[] = []
    while (Date.now() < until) {
      spans = (await collector.spans()).filter((s) => s.traceId === traceId)
      if (done(spans)) return spans
      await sleep(200)
    }
    return spans
  }

  it('an upload is one connected trace: HTTP span, import, a stream per node, node spans, RocksDB batches', async () => {
    const bytes = deterministicBytes(3 * 262_144 + 1000, 'traced-upload')
    const up = await rawUpload(cluster.gatewayUrl, bytes)
    assert.equal(up.status, 201, up.text)

    // The HTTP server span of this request is the trace's root.
    const root = await requestSpan('POST /mycel/v1/upload', (name) => name === 'POST /mycel/v1/upload')
    assert.equal(root.parentSpanId, '', 'the request span is the root')
    const nodeInstances = (spans: CollectedSpan[]) =>
      new Set(spans.filter((s) => s.service === 'mycel-node').map((s) => s.instance))
    // Wait for all of it: R node streams, and every copy of the 5 blocks in a traced batch.
    const spans = await traceOf(
      root.traceId,
      (ss) =>
        ss.filter((s) => s.service === 'mycel-node' && s.kind === SPAN_KIND_SERVER).length >= R &&
        ss.filter((s) => s.name === 'mycel.write.stream').length >= R &&
        ss.some((s) => s.name === 'mycel.upload.import') &&
        ss
          .filter((s) => s.name === 'mycel.rocksdb.write_batch')
          .reduce((n, s) => n + Number(s.attributes['mycel.batch.new_blocks'] ?? 0), 0) >=
          5 * R,
    )

    // Connected: every parent is a span of the same trace.
    const ids = new Set(spans.map((s) => s.spanId))
    for (const s of spans) {
      if (s === root || s.spanId === root.spanId) continue
      assert.ok(ids.has(s.parentSpanId), `parent of ${s.service} ${s.name} is in the trace`)
    }

    // The gateway and R distinct nodes, told apart by their resources.
    assert.deepEqual([...new Set(spans.map((s) => s.service))].sort(), ['mycel-gateway', 'mycel-node'])
    const nodes = nodeInstances(spans)
    assert.equal(nodes.size, R, `spans from ${R} nodes: ${[...nodes].join(', ')}`)
    for (let i = 0; i < R; i++) assert.ok(nodes.has(cluster.nodeAddress(i)), `node ${i} is in the trace`)

    // Gateway: import span with placement events, one write stream per node, each the parent of
    // a PutBlocks client span whose server side is on that node.
    const byId = new Map(spans.map((s) => [s.spanId, s]))
    const imp = spans.find((s) => s.name === 'mycel.upload.import')
    assert.ok(imp, 'import span')
    assert.equal(imp.attributes['mycel.upload.root'], up.body.cid)
    assert.equal(imp.attributes['mycel.blocks.written'], '5')
    const placed = imp.events.filter((e) => e.name === 'mycel.placement.node_added')
    assert.equal(placed.length, R, 'a placement event per node the upload wrote to')
    const streams = spans.filter((s) => s.name === 'mycel.write.stream')
    assert.equal(streams.length, R)
    for (const stream of streams) {
      assert.equal(stream.parentSpanId, imp.spanId)
      assert.equal(stream.attributes['mycel.blocks.acked'], '5')
      const client = spans.find((s) => s.parentSpanId === stream.spanId)
      assert.ok(client, 'PutBlocks client span under the stream')
      assert.equal(client.kind, SPAN_KIND_CLIENT)
      assert.match(client.name, /PutBlocks/)
      const server = spans.find((s) => s.parentSpanId === client.spanId)
      assert.ok(server, 'PutBlocks server span under the client span (trace context crossed gRPC)')
      assert.equal(server.service, 'mycel-node')
      assert.equal(server.instance, stream.attributes['mycel.node.address'])
      // The node's RocksDB batches of this stream hang under its server span.
      const batches = spans.filter(
        (s) => s.name === 'mycel.rocksdb.write_batch' && s.parentSpanId === server.spanId,
      )
      assert.ok(batches.length >= 1, `RocksDB batch spans on ${server.instance}`)
      const newBlocks = batches.reduce((n, b) => n + Number(b.attributes['mycel.batch.new_blocks']), 0)
      assert.equal(newBlocks, 5, 'every block of the upload written in a traced batch')
    }
    for (const s of spans) {
      if (s.name === 'mycel.rocksdb.write_batch')
        assert.equal(byId.get(s.parentSpanId)?.service, 'mycel-node')
    }

    // The gateway's log line for this import carries the trace's id.
    const log = await readFile(join(cluster.dataDir, 'logs', 'gateway.log'), 'utf8')
    const line = log
      .split('\n')
      .find((l) => l.includes('"import complete"') && l.includes(up.body.cid as string))
    assert.ok(line, 'import complete logged')
    assert.equal(JSON.parse(line).trace_id, root.traceId)
  })

  it('a download is one trace too: a GetBlock call per block, served by a node, without warnings', async () => {
    const bytes = deterministicBytes(2 * 262_144 + 5, 'traced-download') // 3 leaves and a root
    const up = await rawUpload(cluster.gatewayUrl, bytes)
    assert.equal(up.status, 201, up.text)
    const res = await fetch(`${cluster.gatewayUrl}/ipfs/${up.body.cid}`)
    assert.equal(res.status, 200)
    assert.equal((await res.arrayBuffer()).byteLength, bytes.byteLength)
    const root = await requestSpan('GET /ipfs', (name) => name.startsWith('GET /ipfs'))
    const blocks = 4
    const spans = await traceOf(
      root.traceId,
      (ss) => ss.filter((s) => s.service === 'mycel-node' && /GetBlock/.test(s.name)).length >= blocks,
    )
    const clients = spans.filter((s) => s.kind === SPAN_KIND_CLIENT && /GetBlock/.test(s.name))
    // Every block once, from the first node of its placement.
    assert.equal(clients.length, blocks, `${clients.length} GetBlock calls for ${blocks} blocks`)
    for (const client of clients) {
      const server = spans.find((s) => s.parentSpanId === client.spanId)
      assert.equal(server?.service, 'mycel-node')
    }
    // Tracing adds listeners to every response; Node must not warn about them on each request.
    const log = await readFile(join(cluster.dataDir, 'logs', 'gateway.log'), 'utf8')
    assert.doesNotMatch(log, /Warning/)
  })

  it('probes and scrapes start no traces', async () => {
    await fetch(`${cluster.gatewayUrl}/metrics`)
    await fetch(`${cluster.gatewayUrl}/readyz`)
    await fetch(`${cluster.adminUrl(0)}/metrics`)
    await sleep(3000) // the gateway probes every node every 2 s
    const names = new Set((await collector.spans()).map((s) => s.name))
    for (const name of names) assert.doesNotMatch(name, /GetNodeStats|metrics|readyz|healthz/)
  })
})
