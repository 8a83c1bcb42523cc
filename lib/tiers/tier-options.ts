/** Options shared by every tier. */
export interface BaseTierOptions {
  /**
   * Upper bound, in milliseconds, on how long an entry lives in this tier, whatever TTL the caller
   * asked for. Backfills use the entry's remaining TTL capped by this. `0` or absent: no cap
   * (the memory tier has a default cap, see {@link MemoryTierOptions.ttl}).
   */
  ttl?: number;
  /** Name used in stats, logs and error events. Default: the type, suffixed `[i]` when repeated. */
  name?: string;
}

/** In-process memory, an LRU bounded by bytes and entries. */
export interface MemoryTierOptions extends BaseTierOptions {
  type: 'memory';
  /**
   * TTL cap in ms. Default 5000. This is the staleness bound between app instances: a write or a
   * delete made by another instance reaches this one's memory tier at most this late.
   */
  ttl?: number;
  /** Byte budget of the LRU (encoded size; estimated size when `serialize` is false). Default 64 MiB. */
  maxBytes?: number;
  /** Entry budget of the LRU. Default 100 000. */
  maxEntries?: number;
  /**
   * `true` (default): keeps encoded bytes and hands every caller its own copy, so mutating a
   * returned object never changes what the next caller gets. `false`: stores and returns the very
   * object that was set: faster, but callers must treat cached values as immutable.
   */
  serialize?: boolean;
}

/** A memcached cluster, spoken to with memjs over the binary protocol. */
export interface MemcachedTierOptions extends BaseTierOptions {
  type: 'memcached';
  /** `host:port` of every node. Keys are spread over them by a consistent-hash (ketama) ring. */
  servers: string[];
  /** Per-operation timeout in ms. Default 500. */
  timeout?: number;
  /** Retries of a failed read or write on the node that owns the key (never for counters). Default 1. */
  retries?: number;
  /** Values larger than this many bytes skip the tier. Default 1 MiB minus 1 KiB of item overhead. */
  maxValueBytes?: number;
}

/** A Cassandra (or ScyllaDB) cluster, spoken to with cassandra-driver. */
export interface CassandraTierOptions extends BaseTierOptions {
  type: 'cassandra';
  /** `host` or `host:port` of contact points. Default port 9042. */
  contactPoints: string[];
  /** The driver's local data center, e.g. `datacenter1`. */
  localDataCenter: string;
  /** Keyspace name (a CQL identifier). Default `tiered_cache`. */
  keyspace?: string;
  /** Table name (a CQL identifier). Default `cache`; the counter table is `<table>_counters`. */
  table?: string;
  /**
   * Replication map used when the keyspace is created.
   * Default `{ class: 'SimpleStrategy', replication_factor: 1 }`: a cache, not a system of record.
   */
  replication?: Record<string, string | number>;
  /** Create keyspace and tables when missing. Default true. */
  createSchema?: boolean;
  /** Consistency of reads and writes, a `types.consistencies` name. Default `localOne`. */
  consistency?:
    'one' | 'localOne' | 'quorum' | 'localQuorum' | 'all' | 'eachQuorum' | 'two' | 'three';
  credentials?: { username: string; password: string };
  /** Per-request timeout in ms (driver `readTimeout`). Default 2000. */
  timeout?: number;
}

export type TierOptions = MemoryTierOptions | MemcachedTierOptions | CassandraTierOptions;
