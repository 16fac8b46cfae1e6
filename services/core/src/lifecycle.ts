import { isAbortError } from './errors.js'
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

/**
 * A promise rejection that nothing handled is logged and the process keeps serving, instead of
 * Node's default exit. ipfs-unixfs-exporter 16.2 drops the promise of each child read of a file
 * deeper than one level (`void childQueue.add(...)` in its file exporter) while it delivers the
 * same error to the reader: without this, a client that disconnects during a download of a large
 * file, or a file DAG with a missing or malformed block, ends the whole process.
 */
export function keepServingOnUnhandledRejections(logger: Logger): void {
  process.on('unhandledRejection', (reason) => {
    const cancelled = isAbortError(reason) || (reason as { code?: unknown; metadata?: unknown }).code === 1
    if (cancelled) logger.debug({ err: String(reason) }, 'dropped rejection of a cancelled read')
    else logger.warn({ err: reason }, 'unhandled promise rejection (the process keeps serving)')
  })
}
