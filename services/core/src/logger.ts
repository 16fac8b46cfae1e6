import { type Logger, pino } from 'pino'

export type { Logger }

/** JSON logs on stdout, one child logger per component (`component: 'node:block-store'`). */
export function createLogger(service: string, level = 'info'): Logger {
  return pino({
    level,
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
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
