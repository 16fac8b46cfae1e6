import { context, isSpanContextValid, trace } from '@opentelemetry/api'
import { type Logger, pino } from 'pino'

export type { Logger }

/**
 * The active trace's ids on every line logged inside it (W3C hex, the names OpenTelemetry's log
 * data model uses), so a log line leads to its trace and back. Without an active span (tracing
 * off, or outside any request) nothing is added.
 */
export function traceLogFields(): Record<string, string> {
  const sc = trace.getSpanContext(context.active())
  if (sc === undefined || !isSpanContextValid(sc)) return {}
  return { trace_id: sc.traceId, span_id: sc.spanId, trace_flags: `0${sc.traceFlags.toString(16)}`.slice(-2) }
}

/** JSON logs on stdout, one child logger per component (`component: 'node:block-store'`). */
export function createLogger(service: string, level = 'info'): Logger {
  return pino({
    level,
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin: traceLogFields,
  })
}

/** Adapts a pino logger to NestJS's LoggerService shape, so Nest's own messages are JSON too. */
export function nestLogger(logger: Logger) {
  const ctx = (context: unknown) => (typeof context === 'string' ? { context } : {})
  return {
    log: (message: unknown, context?: unknown) => logger.info(ctx(context), String(message)),
    error: (message: unknown, trace?: unknown, context?: unknown) =>
      logger.error({ ...ctx(context), trace }, String(message)),
    warn: (message: unknown, context?: unknown) => logger.warn(ctx(context), String(message)),
    debug: (message: unknown, context?: unknown) => logger.debug(ctx(context), String(message)),
    verbose: (message: unknown, context?: unknown) => logger.trace(ctx(context), String(message)),
    fatal: (message: unknown, context?: unknown) => logger.fatal(ctx(context), String(message)),
  }
}
