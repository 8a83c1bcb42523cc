/** Metadata key set by `@Cached()`. */
export const CACHED_METADATA = 'tiered_cache:cached';
/** Metadata key set by `@CacheEvict()`. */
export const CACHE_EVICT_METADATA = 'tiered_cache:evict';
/** Response header telling what the cache did: `HIT`, `MISS`, `STALE`, or `BYPASS` (not cached). */
export const X_CACHE_HEADER = 'X-Cache';
