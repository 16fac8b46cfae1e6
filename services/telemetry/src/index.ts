// Mycel's telemetry in one place: the OpenTelemetry SDK start (before the application loads),
// tracing helpers on the OpenTelemetry API (no-ops while tracing is off), and the Prometheus
// helpers every service's /metrics shares. See ARCHITECTURE.md, "Observability".
export * from './metrics.js'
export * from './start.js'
export * from './tracing.js'
