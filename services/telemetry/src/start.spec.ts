import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { tracingEnabled } from './start.js'

describe('tracingEnabled: only the standard OTEL_* variables turn tracing on', () => {
  it('is off with nothing set (make run)', () => {
    assert.equal(tracingEnabled({}), false)
  })
  it('is on when an OTLP endpoint is set', () => {
    assert.equal(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), true)
    assert.equal(
      tracingEnabled({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }),
      true,
    )
  })
  it('treats an empty endpoint as unset', () => {
    assert.equal(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: ' ' }), false)
  })
  it('is off when the SDK is disabled or the exporter is none, endpoint or not', () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }
    assert.equal(tracingEnabled({ ...endpoint, OTEL_SDK_DISABLED: 'true' }), false)
    assert.equal(tracingEnabled({ ...endpoint, OTEL_SDK_DISABLED: 'TRUE' }), false)
    assert.equal(tracingEnabled({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' }), false)
    assert.equal(tracingEnabled({ ...endpoint, OTEL_SDK_DISABLED: 'false' }), true)
  })
  it('is on for an explicit non-OTLP exporter (console, for debugging) without an endpoint', () => {
    assert.equal(tracingEnabled({ OTEL_TRACES_EXPORTER: 'console' }), true)
    assert.equal(tracingEnabled({ OTEL_TRACES_EXPORTER: 'otlp' }), false)
  })
})
