// Public entry point of nestjs-tiered-cache.

// Tier engine
export { TieredStore, createTieredStore } from './store/tiered-store';
export type { TieredStoreOptions } from './store/tiered-store.options';
export type { TierStats } from './store/tier-stats';
export type { CircuitBreakerOptions, CircuitState } from './store/circuit-breaker';
export { TieredKeyvAdapter, createTieredKeyv } from './store/keyv-adapter';
export type { BusEvent } from './store/coherence';
export {
  CacheEvents,
  type CacheEventListener,
  type CacheEventMap,
  type CacheEventName,
  type LeaseEventOutcome,
  type OriginOutcome,
} from './store/cache-events';
export type { SetManyEntry, SetOptions } from './store/stored-entry';
export type { InvalidateTagsOptions, TagMode } from './store/tag-times';

// Invalidation bus
export type { BusOptions } from './bus/bus.options';
export type { BusStats } from './bus/invalidation-bus';
export type { InvalidationMessage, TagInvalidation } from './bus/invalidation-message';
export type { InvalidationTransport, TransportHandlers } from './bus/invalidation-transport';
export { RedisTransport, type RedisClientLike } from './bus/redis-transport';

// Tiers: the contract, for tiers of your own, and the built-in ones
export { MAX_KEY_BYTES, isLocalTier, localRecord } from './tiers/tier.interface';
export type {
  LocalRecord,
  LocalRecordExtras,
  LocalTier,
  Tier,
  TierCapabilities,
  TierFailure,
  TierWrite,
} from './tiers/tier.interface';
export type {
  BaseTierOptions,
  CassandraTierOptions,
  MemcachedDiscoveryOptions,
  MemcachedTierOptions,
  MemoryTierOptions,
  TierContext,
  TierOptions,
} from './tiers/tier-options';
export { MemoryTier } from './tiers/memory/memory.tier';
export { MemcachedTier } from './tiers/memcached/memcached.tier';
export { CassandraTier } from './tiers/cassandra/cassandra.tier';
export type { CassandraConsistency } from './tiers/cassandra/cassandra.options';

// ElastiCache auto discovery
export {
  ElastiCacheDiscovery,
  fetchClusterConfig,
} from './tiers/memcached/discovery/elasticache-discovery';
export { parseClusterConfig } from './tiers/memcached/discovery/cluster-config';
export type { ClusterConfig, ClusterNode } from './tiers/memcached/discovery/cluster-config';

// Errors
export {
  CacheDecodeError,
  CacheTimeoutError,
  ClusterConfigError,
  DiscoveryError,
  InvalidKeyError,
  InvalidOptionError,
  MemcachedError,
  TierError,
  TieredCacheError,
  ValueTooLargeError,
} from './errors';
export type { ErrorCode, MemcachedErrorKind } from './errors';

// Keys, serialization, time
export { KeyBuilder, type KeyBuilderOptions } from './keys/key-builder';
export {
  Codec,
  MAX_TAG_BYTES,
  MAX_TAGS_PER_ENTRY,
  MAX_VALUE_DEPTH,
  type CacheRecord,
  type CodecOptions,
  type Tagged,
} from './serialization/codec';
export { systemClock, type Clock } from './clock';

// Herd protection
export type { HerdOptions } from './herd/herd.options';
export type { CacheLookup, CacheStatus } from './herd/read-through';
export { cacheEntryContext, type CacheEntryContext, type Factory } from './herd/entry-context';
export type { CacheEmptyOptions, NotFoundErrorClass } from './herd/cache-empty';

// NestJS module
export { TieredCacheModule } from './nest/tiered-cache.module';
export { TIERED_CACHE_OPTIONS } from './nest/tiered-cache.module-definition';
export {
  DEFAULT_PRIVATE_HEADERS,
  type TieredCacheModuleOptions,
  type TieredCacheModuleRootOptions,
} from './nest/tiered-cache.options';
export type {
  CacheOptionsFactoryLike,
  TieredCacheModuleAsyncOptions,
  TieredCacheOptionsClass,
  TieredCacheOptionsFactory,
} from './nest/tiered-cache.async-options';
export { TieredCache, type GetOrSetOptions } from './nest/tiered-cache.service';
export {
  CACHED_METADATA,
  CACHE_EVICT_METADATA,
  X_CACHE_HEADER,
} from './nest/tiered-cache.constants';
export { Cached, type CachedOptions } from './nest/cached.decorator';
export { CacheEntry } from './nest/cache-entry.decorator';
export { CacheEvict, type CacheEvictOptions } from './nest/cache-evict.decorator';
export type {
  CacheDecorator,
  CacheEvictHandlerArgs,
  CacheEvictHandlerKeys,
  CacheEvictHandlerTags,
  CacheableRequest,
  CachedHandlerArgs,
  CachedHandlerCondition,
  CachedHandlerKey,
  CachedHandlerTags,
  ConditionArgs,
} from './nest/decorated-method';
export { TieredCacheInterceptor } from './nest/tiered-cache.interceptor';
export { isHttpEntry, type CachedHttpOptions, type HttpEntry } from './nest/conditional-get';
export {
  TieredCacheHealthIndicator,
  type TieredCacheHealth,
  type TieredCacheHealthOptions,
  type TieredCacheHealthResult,
  type TierHealth,
} from './nest/tiered-cache.health';

// Operations: Prometheus metrics, OpenTelemetry tracing
export { CacheMetrics, collectMetrics } from './telemetry/prometheus';
export {
  DEFAULT_METRICS_PREFIX,
  type MetricsOptions,
  type MetricsRegistryLike,
} from './telemetry/metrics.options';
export {
  CacheTracing,
  TRACER_NAME,
  traceKeyHash,
  type CacheTracingOptions,
  type TracedStore,
  type TracerLike,
} from './telemetry/tracing';
export { CachedMethodsExplorer } from './nest/cached-methods.explorer';
