import { hostname } from 'node:os'
import { createLogger } from '@mycel/core'
import { type DiagLogger, DiagLogLevel, diag } from '@opentelemetry/api'

/**
 * Modules the SDK instruments. Mycel is ESM, so an `import` of them only reaches the
 * instrumentations through import-in-the-middle's loader hooks; the CommonJS require hook alone
 * patches nothing (checked: no span at all without the hooks). Only these are intercepted.
 */
const INSTRUMENTED_MODULES = ['@grpc/grpc-js', 'express', 'http', 'node:http', 'https', 'node:https']

/**
 * gRPC methods never traced, on the client and the server side (the instrumentation matches the
 * method name): periodic probes, background protocols and service plumbing would start a root
 * trace every few seconds per peer. Gossip (MembershipService: Ping, PingReq, Sync, and the
 * gateways' GetMembership/WatchMembership) and pin anti-entropy (SyncPins) are such protocols.
 */
export const UNTRACED_GRPC_METHODS: string[] = [
  'GetNodeStats',
  'Check',
  'Watch',
  'ServerReflectionInfo',
  'Ping',
  'PingReq',
  'Sync',
  'GetMembership',
  'WatchMembership',
  'SyncPins',
]

/** HTTP paths never traced: scrapes and probes. */
const UNTRACED_HTTP_PATHS = new Set(['/metrics', '/healthz', '/readyz'])

export interface TelemetryOptions {
  /** service.name unless OTEL_SERVICE_NAME is set. */
  serviceName: string
  /** Resource attributes of this process; OTEL_RESOURCE_ATTRIBUTES overrides them. */
  attributes?: Record<string, string>
  env?: NodeJS.ProcessEnv
}

const nonEmpty = (v: string | undefined): v is string => v !== undefined && v.trim() !== ''

/**
 * Whether traces are exported: only when the standard variables ask for it. An OTLP endpoint
 * (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) turns it on, or an explicit
 * non-OTLP exporter (OTEL_TRACES_EXPORTER=console, for debugging); OTEL_SDK_DISABLED=true and
 * OTEL_TRACES_EXPORTER=none turn it off. With nothing set (`make run`) the SDK is not loaded at all.
 */
export function tracingEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  if (exporters.includes('none')) return false
  if (nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT) || nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT))
    return true
  return exporters.some((e) => e !== 'otlp')
}

let shutdownHook: (() => Promise<void>) | undefined
let started = false

/**
 * Starts the OpenTelemetry SDK when tracingEnabled(): loader hooks, instrumentations of HTTP,
 * Express and grpc-js, W3C trace context propagation, and the exporter chosen by OTEL_* (OTLP
 * http/protobuf by default). Must run before the application's modules are imported, so that
 * what they import is patched. Metrics stay on the Prometheus endpoints and logs on stdout unless
 * OTEL_METRICS_EXPORTER / OTEL_LOGS_EXPORTER ask for more.
 */
export async function startTelemetry(opts: TelemetryOptions): Promise<boolean> {
  const env = opts.env ?? process.env
  if (started || !tracingEnabled(env)) return started
  started = true
  const { register, supportsSyncHooks } = await import('import-in-the-middle/register-hooks.mjs')
  if (supportsSyncHooks()) register({ include: INSTRUMENTED_MODULES })
  const [{ NodeSDK }, { HttpInstrumentation }, express, { GrpcInstrumentation }, res] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/instrumentation-http'),
    import('@opentelemetry/instrumentation-express'),
    import('@opentelemetry/instrumentation-grpc'),
    import('@opentelemetry/resources'),
  ])
  if (!nonEmpty(env.OTEL_LOG_LEVEL)) diag.setLogger(pinoDiagLogger(opts.serviceName), DiagLogLevel.WARN)
  const own = { detect: () => ({ attributes: opts.attributes ?? {} }) }
  const sdk = new NodeSDK({
    // The SDK's default detectors, with this process's own attributes before the environment's.
    resourceDetectors: nonEmpty(env.OTEL_NODE_RESOURCE_DETECTORS)
      ? undefined
      : [
          res.serviceInstanceIdDetector,
          res.processDetector,
          res.hostDetector,
          res.osDetector,
          own,
          res.envDetector,
        ],
    serviceName: nonEmpty(env.OTEL_SERVICE_NAME) ? undefined : opts.serviceName,
    metricReaders: nonEmpty(env.OTEL_METRICS_EXPORTER) ? undefined : [],
    logRecordProcessors: nonEmpty(env.OTEL_LOGS_EXPORTER) ? undefined : [],
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => UNTRACED_HTTP_PATHS.has((req.url ?? '').split('?')[0] ?? ''),
        // Outgoing HTTP only inside a trace (Mycel makes none on its own today).
        requireParentforOutgoingSpans: true,
      }),
      // Route templates for HTTP span names; a span per request handler, none per middleware.
      new express.ExpressInstrumentation({
        ignoreLayersType: [express.ExpressLayerType.MIDDLEWARE, express.ExpressLayerType.ROUTER],
      }),
      new GrpcInstrumentation({ ignoreGrpcMethods: UNTRACED_GRPC_METHODS }),
    ],
  })
  sdk.start()
  shutdownHook = () => sdk.shutdown()
  return true
}

/** Flushes and stops the SDK (spans still buffered are exported); a no-op when it never started. */
export async function shutdownTelemetry(): Promise<void> {
  const hook = shutdownHook
  shutdownHook = undefined
  await hook?.().catch(() => undefined)
}

/** Resource attributes of a storage node: its advertised gRPC address identifies it in a cluster. */
export function nodeResourceAttributes(advertiseAddress: string): Record<string, string> {
  return { 'service.instance.id': advertiseAddress, 'mycel.node.address': advertiseAddress }
}

/** Resource attributes of a gateway: host name (the pod name in Kubernetes) and listener. */
export function gatewayResourceAttributes(listen: string): Record<string, string> {
  return { 'service.instance.id': `${hostname()}/${listen}` }
}

/** SDK diagnostics (export failures) as JSON log lines like every other message. */
function pinoDiagLogger(service: string): DiagLogger {
  const log = createLogger(service).child({ component: 'telemetry' })
  const line =
    (level: 'error' | 'warn' | 'info' | 'debug' | 'trace') =>
    (message: string, ...args: unknown[]) =>
      log[level](args.length > 0 ? { details: args.map(String) } : {}, message)
  return {
    error: line('error'),
    warn: line('warn'),
    info: line('info'),
    debug: line('debug'),
    verbose: line('trace'),
  }
}
