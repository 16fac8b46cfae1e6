import {
  type Attributes,
  context,
  type Link,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
} from '@opentelemetry/api'
import { suppressTracing } from '@opentelemetry/core'

export type { Attributes, Span, SpanContext }
export { SpanKind }

/**
 * Mycel's tracer. Until the SDK is started (it is only when an OTLP endpoint is configured, see
 * start.ts) this is the API's no-op tracer: spans cost an object allocation and nothing else.
 * Span names are `mycel.<subsystem>.<operation>`.
 */
export const tracer = trace.getTracer('mycel')

/**
 * Most traced spans a batch links to besides its parent. A RocksDB group commit may hold blocks
 * from many streams; a few links show the sharing without making a span of hundreds.
 */
const MAX_BATCH_LINKS = 16

/** The active span's context when it is sampled (recorded and exported), else undefined. */
export function sampledSpanContext(): SpanContext | undefined {
  const sc = trace.getSpanContext(context.active())
  return sc !== undefined && (sc.traceFlags & TraceFlags.SAMPLED) !== 0 ? sc : undefined
}

/** The span of the active context, if any (a no-op span when tracing is off). */
export function activeSpan(): Span | undefined {
  return trace.getActiveSpan()
}

/**
 * A span for work done on behalf of many traced operations at once (a RocksDB write batch holds
 * blocks from several streams): child of the first operation's span, linked to the others.
 * Undefined when none of them is sampled, so untraced work creates no root spans.
 */
export function startBatchSpan(
  name: string,
  traced: ReadonlyArray<SpanContext | undefined>,
  attributes: Attributes,
): Span | undefined {
  let parent: SpanContext | undefined
  const links: Link[] = []
  const seen = new Set<string>()
  for (const sc of traced) {
    if (sc === undefined || seen.has(sc.spanId)) continue
    seen.add(sc.spanId)
    if (parent === undefined) parent = sc
    else if (links.length < MAX_BATCH_LINKS) links.push({ context: sc })
  }
  if (parent === undefined) return undefined
  return tracer.startSpan(
    name,
    { kind: SpanKind.INTERNAL, attributes: { ...attributes, 'mycel.batch.traces': seen.size }, links },
    trace.setSpanContext(ROOT_CONTEXT, parent),
  )
}

/**
 * `span` while it still records, else undefined: for events and attributes added from callbacks
 * that may run after the span ended (the SDK would warn on every such call).
 */
export function recording(span: Span | undefined): Span | undefined {
  return span?.isRecording() ? span : undefined
}

/** Ends a span, recording `err` (if any) as its error status. */
export function endSpan(span: Span | undefined, err?: unknown): void {
  if (span === undefined) return
  if (err !== undefined) {
    span.recordException(err instanceof Error ? err : String(err))
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) })
  }
  span.end()
}

/** Runs `fn` inside a new active span that ends when it settles (errors recorded). */
export async function inSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  kind: SpanKind = SpanKind.INTERNAL,
): Promise<T> {
  return tracer.startActiveSpan(name, { kind, attributes }, async (span) => {
    try {
      const result = await fn(span)
      span.end()
      return result
    } catch (err) {
      endSpan(span, err)
      throw err
    }
  })
}

/**
 * Runs `fn` with tracing suppressed: background chatter (health probes every few seconds) would
 * otherwise start a root trace per call.
 */
export function untraced<T>(fn: () => T): T {
  return context.with(suppressTracing(context.active()), fn)
}

/** Calls `fn` in `span`'s context (for callbacks that lost it, such as stream events). */
export function withSpan<T>(span: Span, fn: () => T): T {
  return context.with(trace.setSpan(context.active(), span), fn)
}
