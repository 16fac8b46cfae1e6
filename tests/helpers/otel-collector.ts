import { type ChildProcess, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePortRange, TEST_TMP } from './cluster.js'

const ROOT = join(import.meta.dirname, '..', '..', '..')
const MANIFEST = join(ROOT, 'tests', 'otel', 'otelcol-builder.yaml')
const CONFIG = join(ROOT, 'tests', 'otel', 'collector.yaml')

/**
 * The collector binary `make otelcol` builds: OTELCOL_BIN (the Makefile passes it), else the path
 * the Makefile derives from the manifest (version and content hash).
 */
export function collectorBinary(): string {
  const fromEnv = process.env.OTELCOL_BIN
  if (fromEnv) return fromEnv
  const manifest = readFileSync(MANIFEST)
  const version = /^ {2}version: *(\S+)/m.exec(manifest.toString())?.[1]
  const hash = createHash('sha256').update(manifest).digest('hex').slice(0, 12)
  return join(ROOT, '.tools', `otelcol-mycel-${version}-${hash}`, 'otelcol-mycel')
}

/** A span as the collector's file exporter wrote it, with its resource's identity. */
export interface CollectedSpan {
  traceId: string
  spanId: string
  parentSpanId: string
  name: string
  kind: number
  service: string
  instance: string
  attributes: Record<string, unknown>
  events: Array<{ name: string; attributes: Record<string, unknown> }>
  links: Array<{ traceId: string; spanId: string }>
}

export interface Collector {
  /** OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT for http/protobuf). */
  httpEndpoint: string
  /** OTLP/gRPC endpoint (OTEL_EXPORTER_OTLP_ENDPOINT with OTEL_EXPORTER_OTLP_PROTOCOL=grpc). */
  grpcEndpoint: string
  /** Every span received so far. */
  spans(): Promise<CollectedSpan[]>
  stop(): Promise<void>
}

type OtlpValue = { stringValue?: string; intValue?: string; boolValue?: boolean; doubleValue?: number }
const attrs = (list: Array<{ key: string; value: OtlpValue }> | undefined): Record<string, unknown> =>
  Object.fromEntries(
    (list ?? []).map((a) => [
      a.key,
      a.value.stringValue ?? a.value.intValue ?? a.value.boolValue ?? a.value.doubleValue,
    ]),
  )

/**
 * Starts the real OpenTelemetry Collector (tests/otel/collector.yaml) on free loopback ports: OTLP
 * receiver in, the file exporter out (OTLP JSON lines), read back by spans().
 */
export async function startCollector(): Promise<Collector> {
  const bin = collectorBinary()
  if (!existsSync(bin)) throw new Error(`OpenTelemetry Collector not built at ${bin}: run \`make otelcol\``)
  const dir = await mkdtemp(join(TEST_TMP, 'otelcol-'))
  const output = join(dir, 'spans.jsonl')
  const base = await freePortRange(2)
  const env = {
    ...process.env,
    OTLP_HTTP_PORT: String(base),
    OTLP_GRPC_PORT: String(base + 1),
    OTEL_OUTPUT_FILE: output,
  }
  const child: ChildProcess = spawn(bin, [`--config=${CONFIG}`], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  child.stdout?.on('data', (d: Buffer) => {
    log += d.toString()
  })
  child.stderr?.on('data', (d: Buffer) => {
    log += d.toString()
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  // Ready once the OTLP/HTTP receiver answers (any status: it only accepts POST /v1/*).
  const until = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`collector exited (${child.exitCode}): ${log}`)
    const answered = await fetch(`http://127.0.0.1:${base}/`).then(
      () => true,
      () => false,
    )
    if (answered) break
    if (Date.now() > until) {
      child.kill('SIGKILL')
      throw new Error(`collector did not listen within 30 s: ${log}`)
    }
    await sleep(100)
  }
  return {
    httpEndpoint: `http://127.0.0.1:${base}`,
    grpcEndpoint: `http://127.0.0.1:${base + 1}`,
    async spans() {
      const text = await readFile(output, 'utf8').catch(() => '')
      const spans: CollectedSpan[] = []
      for (const line of text.split('\n')) {
        if (line.trim() === '') continue
        const req = JSON.parse(line) as {
          resourceSpans: Array<{
            resource: { attributes: Array<{ key: string; value: OtlpValue }> }
            scopeSpans: Array<{ spans: Array<Record<string, unknown>> }>
          }>
        }
        for (const rs of req.resourceSpans) {
          const resource = attrs(rs.resource.attributes)
          for (const ss of rs.scopeSpans) {
            for (const s of ss.spans) {
              spans.push({
                traceId: s.traceId as string,
                spanId: s.spanId as string,
                parentSpanId: (s.parentSpanId as string | undefined) ?? '',
                name: s.name as string,
                kind: s.kind as number,
                service: String(resource['service.name']),
                instance: String(resource['service.instance.id']),
                attributes: attrs(s.attributes as Array<{ key: string; value: OtlpValue }>),
                events: ((s.events as Array<{ name: string; attributes?: [] }>) ?? []).map((e) => ({
                  name: e.name,
                  attributes: attrs(e.attributes),
                })),
                links: (s.links as Array<{ traceId: string; spanId: string }>) ?? [],
              })
            }
          }
        }
      }
      return spans
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
        await exited
        clearTimeout(timer)
      }
      await rm(dir, { recursive: true, force: true })
    },
  }
}
