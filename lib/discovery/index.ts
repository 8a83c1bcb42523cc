export {
  ClusterConfigError,
  parseClusterConfig,
  scanClusterReply,
  type ClusterConfig,
  type ClusterNode,
  type ClusterReply,
} from './cluster-config';
export {
  DEFAULT_DISCOVERY_INTERVAL_MS,
  DEFAULT_DISCOVERY_TIMEOUT_MS,
  DiscoveryError,
  ElastiCacheDiscovery,
  fetchClusterConfig,
  type ElastiCacheDiscoveryOptions,
} from './elasticache-discovery';
