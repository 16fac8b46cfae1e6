import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { traceLogFields } from '@mycel/core'
import { context, type SpanContext, TraceFlags, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import { inSpan, sampledSpanContext, startBatchSpan, untraced } from './tracing.js'

const sc = (n: number, sampled = true): SpanContext => ({
  traceId: n.toString(16).padStart(32, '0'),
  spanId: n.toString(16).padStart(16, '0'),
  traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
})

describe('tracing helpers, with an SDK registered', () => {
  const exporter = new InMemorySpanExporter()
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] })
  const contextManager = new AsyncLocalStorageContextManager()
  before(() => {
    context.setGlobalContextManager(contextManager.enable())
    trace.setGlobalTracerProvider(provider)
  })
  after(async () => {
    await provider.shutdown()
    trace.disable()
    context.disable()
  })

  it('a batch span is a child of the first sampled operation and links the others (once each)', () => {
    exporter.reset()
    const span = startBatchSpan('mycel.test.batch', [undefined, sc(1), sc(2), sc(1), sc(3)], { 'x.ops': 5 })
    assert.ok(span)
    span.end()
    const [done] = exporter.getFinishedSpans()
    assert.ok(done)
    assert.equal(done.spanContext().traceId, sc(1).traceId)
    assert.equal(done.parentSpanContext?.spanId, sc(1).spanId)
    assert.deepEqual(
      done.links.map((l) => l.context.spanId),
      [sc(2).spanId, sc(3).spanId],
    )
    assert.equal(done.attributes['mycel.batch.traces'], 3)
  })

  it('no batch span when no operation was sampled: untraced work starts no root traces', () => {
    assert.equal(startBatchSpan('mycel.test.batch', [undefined, undefined], {}), undefined)
  })

  it('sampledSpanContext and the log fields follow the active span', async () => {
    assert.equal(sampledSpanContext(), undefined)
    assert.deepEqual(traceLogFields(), {})
    await inSpan('mycel.test.outer', {}, async (span) => {
      assert.equal(sampledSpanContext()?.spanId, span.spanContext().spanId)
      assert.deepEqual(traceLogFields(), {
        trace_id: span.spanContext().traceId,
        span_id: span.spanContext().spanId,
        trace_flags: '01',
      })
    })
  })

  it('inSpan records a failure as the span status and rethrows', async () => {
    exporter.reset()
    await assert.rejects(
      inSpan('mycel.test.failing', {}, async () => {
        throw new Error('boom')
      }),
      /boom/,
    )
    const [done] = exporter.getFinishedSpans()
    assert.equal(done?.status.message, 'boom')
    assert.equal(done?.events[0]?.name, 'exception')
  })

  it('untraced work records no spans', async () => {
    exporter.reset()
    await untraced(() => inSpan('mycel.test.suppressed', {}, async () => undefined))
    assert.equal(exporter.getFinishedSpans().length, 0)
  })
})
