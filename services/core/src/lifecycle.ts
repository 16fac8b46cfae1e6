import type { Logger } from './logger.js'

/**
 * Graceful shutdown on SIGTERM/SIGINT: `close` drains and releases everything, then the process
 * exits 0 (non-zero if closing failed). Further signals are ignored: cutting a drain short could
 * leave RocksDB unclosed. `hardTimeoutMs` bounds the whole shutdown.
 */
export function exitGracefullyOnSignals(
  close: () => Promise<void>,
  logger: Logger,
  hardTimeoutMs: number,
): void {
  let closing = false
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) {
      logger.warn({ signal }, 'already shutting down')
      return
    }
    closing = true
    logger.info({ signal }, 'shutting down')
    setTimeout(() => {
      logger.error({ hardTimeoutMs }, 'shutdown took too long: exiting')
      process.exit(1)
    }, hardTimeoutMs).unref()
    close().then(
      () => {
        logger.info('shutdown complete')
        process.exit(0)
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
}
