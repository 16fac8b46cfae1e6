import { once } from 'node:events'
import type { ServerWritableStream, sendUnaryData } from '@grpc/grpc-js'
import { status } from '@grpc/grpc-js'
import { isAbortError, isMycelError, type Logger } from '@mycel/core'
import { toGrpcError } from '@mycel/proto'
import type { NodeMetrics } from '../admin/metrics.js'

interface CancellableCall {
  cancelled?: boolean
  on(event: 'cancelled', listener: () => void): unknown
  removeListener(event: 'cancelled', listener: () => void): unknown
}

/**
 * An AbortSignal that fires when the client cancels the call or its deadline passes (grpc-js
 * cancels the call then, and answers DEADLINE_EXCEEDED itself), so the work behind it stops.
 */
export function signalOf(call: CancellableCall): { signal: AbortSignal; dispose: () => void } {
  const abort = new AbortController()
  const onCancel = () => abort.abort(Object.assign(new Error('call cancelled'), { name: 'AbortError' }))
  if (call.cancelled) onCancel()
  call.on('cancelled', onCancel)
  return { signal: abort.signal, dispose: () => call.removeListener('cancelled', onCancel) }
}

/** What a handler's error becomes on the wire; unexpected errors are logged with their stack. */
export function grpcErrorOf(err: unknown, log: Logger, method: string) {
  if (isAbortError(err) && !isMycelError(err)) return { code: status.CANCELLED, details: 'cancelled' }
  if (!isMycelError(err)) log.error({ err, method }, 'unexpected error')
  return toGrpcError(err)
}

/**
 * Runs a unary (or client-streaming) handler: its result or its error (through the shared error
 * map) go to the client; `run` gets a signal that fires if the call is cancelled or times out.
 */
export function answer<Res>(
  method: string,
  call: CancellableCall,
  callback: sendUnaryData<Res>,
  deps: { log: Logger; metrics: NodeMetrics },
  run: (signal: AbortSignal) => Promise<Res>,
): void {
  const end = deps.metrics.rpcDuration.startTimer({ method })
  const { signal, dispose } = signalOf(call)
  run(signal).then(
    (res) => {
      dispose()
      end({ code: 'OK' })
      callback(null, res)
    },
    (err: unknown) => {
      dispose()
      const e = grpcErrorOf(err, deps.log, method)
      end({ code: status[e.code ?? status.INTERNAL] ?? 'UNKNOWN' })
      callback(e)
    },
  )
}

/**
 * Runs a server-streaming handler: `produce` writes messages with `send`, which waits while the
 * client is slow (gRPC flow control), so a stream holds only what the transport buffers. The
 * status goes out when `produce` settles: OK, or its error through the shared error map.
 */
export function stream<Res>(
  method: string,
  call: ServerWritableStream<unknown, Res>,
  deps: { log: Logger; metrics: NodeMetrics },
  produce: (send: (msg: Res) => Promise<void>, signal: AbortSignal) => Promise<void>,
): void {
  const end = deps.metrics.rpcDuration.startTimer({ method })
  const { signal, dispose } = signalOf(call)
  const send = async (msg: Res) => {
    signal.throwIfAborted()
    if (!call.write(msg)) await once(call, 'drain', { signal })
  }
  produce(send, signal).then(
    () => {
      dispose()
      end({ code: 'OK' })
      call.end()
    },
    (err: unknown) => {
      dispose()
      const e = grpcErrorOf(err, deps.log, method)
      end({ code: status[e.code ?? status.INTERNAL] ?? 'UNKNOWN' })
      if (!call.cancelled) call.emit('error', e)
    },
  )
}
