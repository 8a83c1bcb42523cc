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
  /**
   * Byte budget of the LRU. An entry counts its encoded size (what memcached would hold) plus its
   * key's length; the objects the tier keeps take more heap than that (about twice, for
   * small rows). Default 64 MiB.
   */
  maxBytes?: number;
  /** Entry budget of the LRU. Default 100 000. */
  maxEntries?: number;
  /**
   * `true` (default): every caller gets its own copy, so mutating a returned (or a stored) object
   * never changes what the next caller gets. JSON-exact values are kept as a private tree and
   * deep-copied per read (about a twentieth of the cost of parsing them); other values (with a
   * Date, Map, BigInt…) are kept encoded and decoded per read. `false`: stores and returns the
   * very object that was set, faster still, but callers must treat cached values as immutable.
   */
  serialize?: boolean;
}

/** Where a memcached tier finds its nodes: an AWS ElastiCache configuration endpoint. */
export interface MemcachedDiscoveryOptions {
  /**
   * `host:port` of the cluster's configuration endpoint, e.g.
   * `my-cluster.abc123.cfg.use1.cache.amazonaws.com:11211`. It is asked `config get cluster`
   * (engine 1.4.14 and later), else `get AmazonElastiCache:cluster` (older engines). Each node is
   * reached at its IP when the configuration gives one, else at its host name.
   */
  endpoint: string;
  /**
   * How often the endpoint is polled, ms (a positive integer). Default 60000. The tier also polls
   * right after it sees a connection error (at most once a second). A node list is applied only
   * when its version is greater than the one in use; an older or equal version is ignored, and a
   * failed poll keeps the current list.
   */
  intervalMs?: number;
  /**
   * What a failed *first* discovery does (the endpoint cannot be reached, or answers as a plain
   * memcached: `ERROR` / `END`). `false` (default): `connect()` rejects with an error naming the
   * endpoint. `true`: the endpoint itself is used as the only node (the IGNORE_CLUSTER_ERRORS of
   * AWS's cluster clients), and polling goes on, so a real configuration found later replaces it.
   * Later failed polls never change the node list, whatever this flag says.
   */
  ignoreErrors?: boolean;
  /** Timeout of one question to the endpoint, connecting included, ms. Default 2000. */
  timeoutMs?: number;
}

/**
 * A memcached cluster, spoken to with memjs over the binary protocol. Give exactly one of
 * `servers` and `discovery` (a `TypeError` names the field otherwise).
 */
export interface MemcachedTierOptions extends BaseTierOptions {
  type: 'memcached';
  /**
   * `host:port` of every node (IPv6 as `[addr]:port`). Keys are spread over them by a
   * consistent-hash (ketama) ring. Required unless `discovery` is set; not allowed with it.
   */
  servers?: string[];
  /**
   * Find the nodes through an ElastiCache configuration endpoint instead of listing them, and
   * follow the cluster as nodes are added, removed or replaced. Not allowed with `servers`.
   */
  discovery?: MemcachedDiscoveryOptions;
  /** Per-operation timeout in ms, connecting included. Default 500. */
  timeout?: number;
  /**
   * Retries of a failed get/set/add/delete (an integer >= 0; never for counters). Default 1. A retry
   * goes to the node owning the key at retry time: after a connection error the failed node is
   * off the ring (see `failoverTime`), so a node that just died costs callers nothing. A timeout
   * is retried too (costing another `timeout`), but does not take the node off the ring. `0`
   * makes every failure visible to the caller (the tier chain then treats it as a miss).
   */
  retries?: number;
  /** Values larger than this many bytes skip the tier. Default 1 MiB minus 1 KiB of item overhead. */
  maxValueBytes?: number;
  /**
   * How long a node whose request failed with a connection error (refused, reset, closed, or no
   * connection within `timeout`) stays off the ring, ms (an integer >= 0). Default 30000. Its keys
   * go to the next node on the ring meanwhile (about `1/n` of the keys, which miss once and are
   * refilled from the next tier). Afterwards the next request probes it in the background (NOOP)
   * and it rejoins the ring when it answers, else stays out another `failoverTime`. When every
   * node has failed, all are tried again as if none had. `0` turns failover off: a dead node's
   * keys fail (after `retries`) until it returns.
   */
  failoverTime?: number;
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
