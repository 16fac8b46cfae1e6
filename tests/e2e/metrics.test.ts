import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startCluster, type TestCluster } from '../helpers/cluster.js'
import { deterministicBytes } from '../helpers/data.js'
import { rawUpload } from '../helpers/http.js'
import { parsePrometheus, type Sample, scrape, sumOf } from '../helpers/metrics.js'
import { eventually } from '../helpers/poll.js'

const R = 3
const ROOT = join(import.meta.dirname, '..', '..', '..')

/**
 * Prometheus metrics of a real cluster, scraped before and after known traffic: every counter
 * must move by exactly what the traffic implies. Tracing is off here (no OTEL_* variables), as in
 * `make run`.
 */
describe('metrics: counters move by what the traffic implies', () => {
  let cluster: TestCluster
  const scrapeAll = async () => ({
    gateway: await scrape(`${cluster.gatewayUrl}/metrics`),
    nodes: await Promise.all(cluster.nodes.map((_, i) => scrape(`${cluster.adminUrl(i)}/metrics`))),
  })
  const nodeSum = (s: { nodes: Sample[][] }, name: string, labels: Record<string, string> = {}) =>
    s.nodes.reduce((n, samples) => n + sumOf(samples, name, labels), 0)

  before(async () => {
    cluster = await startCluster({ nodes: R, env: { MYCEL_LOG_LEVEL: 'info' } })
  })
  after(async () => {
    await cluster?.destroy()
  })

  it('an upload moves bytes, blocks, copies, requests and RPCs by exact amounts', async () => {
    const size = 3 * 262_144 + 1000 // 4 leaves and a root: 5 blocks
    const blocks = 5
    const before = await scrapeAll()
    const up = await rawUpload(cluster.gatewayUrl, deterministicBytes(size, 'metrics-upload'))
    assert.equal(up.status, 201, up.text)
    const dagSize = Number(up.body.dagSize)
    const after = await scrapeAll()
    const delta = (name: string, labels?: Record<string, string>) =>
      sumOf(after.gateway, name, labels) - sumOf(before.gateway, name, labels)
    const nodeDelta = (name: string, labels?: Record<string, string>) =>
      nodeSum(after, name, labels) - nodeSum(before, name, labels)

    assert.equal(delta('mycel_gateway_upload_bytes_total'), size)
    assert.equal(
      delta('mycel_gateway_http_request_duration_seconds_count', {
        route: '/mycel/v1/upload',
        method: 'POST',
        status: '201',
      }),
      1,
    )
    assert.equal(delta('mycel_gateway_blocks_written_total'), blocks)
    assert.equal(delta('mycel_gateway_block_copies_written_total'), blocks * R)
    // Across the cluster: every block stored on R nodes, each copy a new block there.
    assert.equal(nodeDelta('mycel_node_blocks'), blocks * R)
    assert.equal(nodeDelta('mycel_node_blocks_written_total', { result: 'new' }), blocks * R)
    assert.equal(nodeDelta('mycel_node_blocks_written_total', { result: 'existing' }), 0)
    assert.equal(nodeDelta('mycel_node_block_bytes'), dagSize * R)
    assert.equal(nodeDelta('mycel_node_block_bytes_written_total'), dagSize * R)
    assert.equal(
      nodeDelta('mycel_node_rpc_duration_seconds_count', { method: 'PutBlocks', code: 'OK' }),
      blocks * R,
    )
    assert.ok(nodeDelta('mycel_node_rocksdb_write_batch_ops_sum') >= blocks * R)

    // The same bytes again: acknowledged, but nothing new is stored.
    const again = await rawUpload(cluster.gatewayUrl, deterministicBytes(size, 'metrics-upload'))
    assert.equal(again.status, 201, again.text)
    const third = await scrapeAll()
    assert.equal(nodeSum(third, 'mycel_node_blocks') - nodeSum(after, 'mycel_node_blocks'), 0)
    assert.equal(
      nodeSum(third, 'mycel_node_blocks_written_total', { result: 'existing' }) -
        nodeSum(after, 'mycel_node_blocks_written_total', { result: 'existing' }),
      blocks * R,
    )
  })

  it('a download moves bytes out, block fetches and node reads; errors count by route and status', async () => {
    const size = 2 * 262_144 + 17 // 3 leaves and a root
    const up = await rawUpload(cluster.gatewayUrl, deterministicBytes(size, 'metrics-download'))
    assert.equal(up.status, 201, up.text)
    const before = await scrapeAll()
    const res = await fetch(`${cluster.gatewayUrl}/ipfs/${up.body.cid}`)
    assert.equal(res.status, 200)
    assert.equal((await res.arrayBuffer()).byteLength, size)
    const missing = await fetch(
      `${cluster.gatewayUrl}/ipfs/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy`,
    )
    await missing.arrayBuffer()
    const unknown = await fetch(`${cluster.gatewayUrl}/no/such/route`)
    await unknown.arrayBuffer()
    const after = await scrapeAll()
    const delta = (name: string, labels?: Record<string, string>) =>
      sumOf(after.gateway, name, labels) - sumOf(before.gateway, name, labels)

    assert.equal(delta('mycel_gateway_download_bytes_total'), size)
    // Every block exactly once (a root and 3 leaves; the sniffed first leaf is not read again),
    // each fetch one GetBlock answered OK by a node.
    const fetched = delta('mycel_gateway_block_fetches_total', { result: 'ok' })
    assert.equal(fetched, 4, `fetched ${fetched} blocks`)
    const nodeDelta = (name: string, labels?: Record<string, string>) =>
      nodeSum(after, name, labels) - nodeSum(before, name, labels)
    assert.equal(
      nodeDelta('mycel_node_rpc_duration_seconds_count', { method: 'GetBlock', code: 'OK' }),
      fetched,
    )
    assert.ok(nodeDelta('mycel_node_block_bytes_read_total') >= Number(up.body.dagSize))
    const route = after.gateway.find(
      (s) =>
        s.name === 'mycel_gateway_http_request_duration_seconds_count' && s.labels.route?.startsWith('/ipfs'),
    )?.labels.route
    assert.ok(route, 'the /ipfs route is labelled by its template')
    assert.equal(
      delta('mycel_gateway_http_request_duration_seconds_count', { route, method: 'GET', status: '200' }),
      1,
    )
    assert.equal(
      delta('mycel_gateway_http_request_duration_seconds_count', {
        route,
        method: 'GET',
        status: String(missing.status),
      }),
      1,
    )
    assert.equal(
      delta('mycel_gateway_http_request_duration_seconds_count', { route: 'unmatched', status: '404' }),
      1,
    )
  })

  it('every service exposes its gauges: disk, RocksDB, membership, readiness, event-loop lag', async () => {
    const { gateway, nodes } = await scrapeAll()
    const node = nodes[0] as Sample[]
    const has = (samples: Sample[], name: string) => samples.some((s) => s.name === name)
    for (const name of [
      'mycel_node_filesystem_size_bytes',
      'mycel_node_filesystem_available_bytes',
      'mycel_node_capacity_bytes',
      'mycel_node_rocksdb_estimated_keys',
      'mycel_node_rocksdb_memtable_bytes',
      'mycel_node_rocksdb_live_sst_bytes',
      'mycel_node_rocksdb_pending_compaction_bytes',
      'mycel_node_nodejs_eventloop_lag_p99_seconds',
    ]) {
      assert.ok(has(node, name), name)
      assert.ok(Number.isFinite(sumOf(node, name)), `${name} has a value`)
    }
    assert.ok(
      sumOf(node, 'mycel_node_filesystem_size_bytes') >= sumOf(node, 'mycel_node_filesystem_available_bytes'),
    )
    assert.ok(sumOf(node, 'mycel_node_rocksdb_estimated_keys') > 0)
    assert.equal(sumOf(node, 'mycel_node_ready'), 1)
    assert.equal(sumOf(node, 'mycel_node_store_healthy'), 1)
    // Gossip: every node comes to know every other as alive.
    await eventually(
      async () =>
        sumOf(await scrape(`${cluster.adminUrl(0)}/metrics`), 'mycel_node_membership_members', {
          state: 'alive',
        }) === R,
      `node 0 to see ${R} alive members`,
    )
    assert.equal(sumOf(gateway, 'mycel_gateway_members', { state: 'alive' }), R)
    assert.equal(sumOf(gateway, 'mycel_gateway_members', { state: 'dead' }), 0)
    assert.equal(sumOf(gateway, 'mycel_gateway_nodes_up'), R)
    assert.equal(sumOf(gateway, 'mycel_gateway_ready'), 1)
    assert.ok(has(gateway, 'mycel_gateway_nodejs_eventloop_lag_seconds'))
    // Repair and scrub register their metrics on the same registry.
    for (const name of ['mycel_node_repair_queue_blocks', 'mycel_node_scrub_verified_blocks_total'])
      assert.ok(Number.isFinite(sumOf(node, name)), `${name} has a value`)
  })

  it('metric names follow Prometheus conventions: counters end in _total, units are base units', async () => {
    for (const url of [`${cluster.gatewayUrl}/metrics`, `${cluster.adminUrl(0)}/metrics`]) {
      const text = await (await fetch(url)).text()
      for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
        const [, name, type] = m as unknown as [string, string, string]
        // prom-client's own process and runtime metrics keep its names (some gauges end in _total).
        if (/_(nodejs|process)_/.test(name)) continue
        if (type === 'counter') assert.match(name, /_total$/, `counter ${name}`)
        else assert.doesNotMatch(name, /_total$/, `${type} ${name} is not a counter`)
        assert.doesNotMatch(name, /_(ms|milliseconds|kb|mb|kib|mib)(_|$)/, `${name} uses base units`)
      }
      parsePrometheus(text) // and the whole exposition parses
    }
  })

  it('logs carry no trace ids while tracing is off', async () => {
    const log = await readFile(join(cluster.dataDir, 'logs', 'gateway.log'), 'utf8')
    const line = log.split('\n').find((l) => l.includes('"import complete"'))
    assert.ok(line)
    assert.equal(JSON.parse(line).trace_id, undefined)
  })

  it('the Grafana dashboard queries only metrics that exist', async () => {
    const dashboard = JSON.parse(
      await readFile(join(ROOT, 'deploy', 'grafana', 'mycel-dashboard.json'), 'utf8'),
    ) as {
      panels: Array<{ title: string; targets?: Array<{ expr: string }> }>
    }
    const { gateway, nodes } = await scrapeAll()
    const known = new Set([...gateway, ...nodes.flat()].map((s) => s.name))
    let queried = 0
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        for (const [name] of target.expr.matchAll(/\bmycel_[a-z0-9_]+/g)) {
          queried++
          assert.ok(known.has(name), `panel "${panel.title}" queries ${name}, which no service exposes`)
        }
      }
    }
    assert.ok(queried > 40, `the dashboard queries ${queried} metrics`)
  })
})
