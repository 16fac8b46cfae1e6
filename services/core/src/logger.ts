import { pino, type Logger } from 'pino'

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
