// Public entry point of nestjs-tiered-cache.

// Tier engine
export { TieredStore, TierError, createTieredStore } from './store/tiered-store';
export type { TieredStoreOptions } from './store/tiered-store.options';
export type { TierStats } from './store/tier-stats';
export type { CircuitBreakerOptions, CircuitState } from './store/circuit-breaker';

// Tiers
export type { Tier, TierKind, TierWrite } from './tiers/tier.interface';
export type {
  BaseTierOptions,
  CassandraTierOptions,
  MemcachedTierOptions,
  MemcachedDiscoveryOptions,
  MemoryTierOptions,
  TierOptions,
} from './tiers/tier-options';
export { MemoryTier } from './tiers/memory.tier';
export { MemcachedTier } from './tiers/memcached.tier';
export { CassandraTier } from './tiers/cassandra.tier';
export { MemcachedError } from './tiers/memcached.tier';
export type { MemcachedErrorKind } from './tiers/memcached/connection';

// ElastiCache auto discovery
export {
  ClusterConfigError,
  DiscoveryError,
  ElastiCacheDiscovery,
  fetchClusterConfig,
  parseClusterConfig,
} from './discovery';
export type { ClusterConfig, ClusterNode, ElastiCacheDiscoveryOptions } from './discovery';

// Keys, serialization, time
export { KeyBuilder, MAX_KEY_BYTES } from './keys/key-builder';
export type { KeyBuilderOptions } from './keys/key-builder';
export { Codec, CacheDecodeError } from './serialization/codec';
export type { CacheRecord, CodecOptions } from './serialization/codec';
export { systemClock } from './clock';
export type { Clock } from './clock';

