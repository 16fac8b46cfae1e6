import { type ChannelOptions, experimental } from '@grpc/grpc-js'
import type { TlsFiles } from '@mycel/core'
import type { NodeClientsOptions } from './node-clients.js'

/**
 * NodeClients options for a process of a cluster with mutual TLS: channels present this process's
 * certificate and accept only nodes whose certificate chains to the cluster CA and names the
 * dialed host (DNS name or IP in its SANs) or, when `serverName` is set, that name whatever the
 * address (useful when nodes are dialed by addresses that change, such as pod IPs). Each new
 * connection uses the latest files, so a rotated certificate applies without a restart.
 * Without TLS files: plaintext channels.
 */
export function clusterClientOptions(tls: TlsFiles | undefined, serverName?: string): NodeClientsOptions {
  if (tls === undefined) return {}
  const channelOptions: ChannelOptions =
    serverName === undefined ? {} : { 'grpc.ssl_target_name_override': serverName }
  return {
    credentials: experimental.createCertificateProviderChannelCredentials(tls, tls),
    channelOptions,
  }
}
