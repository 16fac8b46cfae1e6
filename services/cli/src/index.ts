export {
  DEFAULT_PORTS,
  LOCAL_MEMBERSHIP_ENV,
  LocalCluster,
  type LocalClusterOptions,
  type LocalClusterPorts,
  type MemberStatus,
  ServiceProcess,
} from './local-cluster.js'
