export {
  DEFAULT_PORTS,
  LocalCluster,
  type LocalClusterOptions,
  type LocalClusterPorts,
  ServiceProcess,
  tlsEnvFor,
} from './local-cluster.js'
