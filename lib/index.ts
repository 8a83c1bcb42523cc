// Public entry point of nestjs-tiered-cache.

// Tier engine
export { TieredStore, TierError, createTieredStore } from './store/tiered-store';
export type { LeaseOutcome, SetEntryOptions, StoredEntry } from './store/tiered-store';
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
export type { CacheRecord, CodecOptions, EntryMeta } from './serialization/codec';
export { systemClock } from './clock';
export type { Clock } from './clock';

// Keyv / cache-manager
export { TieredKeyvAdapter, createTieredKeyv } from './store/keyv-adapter';

// NestJS module
export { TieredCacheModule } from './tiered-cache.module';
export { TIERED_CACHE_OPTIONS } from './tiered-cache.module-definition';
export type { TieredCacheModuleOptions } from './tiered-cache.options';
export { TieredCache } from './tiered-cache.service';
export type { GetOrSetOptions } from './tiered-cache.service';
export { CACHED_METADATA, CACHE_EVICT_METADATA, X_CACHE_HEADER } from './tiered-cache.constants';
export { Cached } from './decorators/cached.decorator';
export type { CachedOptions } from './decorators/cached.decorator';
export { CacheEvict } from './decorators/cache-evict.decorator';
export type { CacheEvictOptions } from './decorators/cache-evict.decorator';
export { TieredCacheInterceptor } from './interceptors/tiered-cache.interceptor';
export { CachedMethodsExplorer } from './explorer/cached-methods.explorer';

// Herd protection
export { SingleFlight } from './herd/single-flight';
export { CacheTimeoutError, ReadThrough } from './herd/read-through';
export type {
  CacheLookup,
  CacheStatus,
  ReadThroughCall,
  ReadThroughHooks,
} from './herd/read-through';
export { HERD_DEFAULTS, resolveHerdOptions } from './herd/herd.options';
export type { HerdOptions, ResolvedHerdOptions } from './herd/herd.options';
export { shouldRefreshEarly } from './herd/early-refresh';
export { stableKey } from './keys/stable-key';
