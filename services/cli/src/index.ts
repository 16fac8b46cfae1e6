export {
  DEFAULT_PORTS,
  LOCAL_MEMBERSHIP_ENV,
  LocalCluster,
  type LocalClusterOptions,
  type LocalClusterPorts,
  type MemberStatus,
  ServiceProcess,
  tlsEnvFor,
} from './local-cluster.js'
