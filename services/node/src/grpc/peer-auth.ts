import {
  experimental,
  ServerCredentials,
  ServerInterceptingCall,
  type ServerInterceptor,
  status,
} from '@grpc/grpc-js'
import type { TlsFiles } from '@mycel/core'

/**
 * Services any client may call on the node's port without a cluster certificate: health (probes,
 * load balancers) and reflection (the proto files are public). Everything else is internal
 * unless it is registered as public (the client-facing API, which checks its own tokens).
 */
export const ALWAYS_PUBLIC_SERVICES: readonly string[] = [
  // The client API: it checks bearer tokens itself (MYCEL_API_TOKENS_FILE).
  'mycel.v1.ApiService',
  'grpc.health.v1.Health',
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
]

/**
 * The node's server credentials. Without TLS files: plaintext (make run). With them: TLS with this
 * node's certificate (reloaded when the files change), and the client's certificate requested and
 * verified against the cluster CA but not required at the handshake, because public services share
 * the port; `requireClusterPeer` refuses internal calls on connections without a verified one.
 */
export function nodeServerCredentials(tls: TlsFiles | undefined): ServerCredentials {
  if (tls === undefined) return ServerCredentials.createInsecure()
  // grpc-js's parameter names are swapped (identity first); the same provider serves both.
  return experimental.createCertificateProviderServerCredentials(tls, tls, false)
}

/**
 * A server interceptor that answers UNAUTHENTICATED to any call of an internal service over a
 * connection whose client did not present a certificate that chains to the cluster CA (grpc-js
 * exposes the peer certificate only when the TLS socket verified it).
 */
export function requireClusterPeer(isPublic: (service: string) => boolean): ServerInterceptor {
  return (method, call) => {
    const service = method.path.slice(1, method.path.lastIndexOf('/'))
    if (isPublic(service) || call.getAuthContext().sslPeerCertificate !== undefined) {
      return new ServerInterceptingCall(call)
    }
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          // Not passing the metadata on keeps the handler from ever running.
          onReceiveMetadata: () =>
            call.sendStatus({
              code: status.UNAUTHENTICATED,
              details: `${service} is internal to the cluster: the caller must present a TLS certificate issued by the cluster CA`,
            }),
        }),
    })
  }
}
