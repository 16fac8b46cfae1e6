export {
  DEFAULT_PORTS,
  LocalCluster,
  type LocalClusterOptions,
  type LocalClusterPorts,
  ServiceProcess,
} from './local-cluster.js'
