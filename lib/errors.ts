/**
 * Every error this library raises carries a stable `code`, so callers can branch on it without
 * matching messages. Option and key errors are `TypeError`s (they are programming errors, and
 * `instanceof TypeError` keeps working); the rest are `Error`s.
 */
export type ErrorCode =
  /** An option is missing, of the wrong type or out of range; `path` names it. */
  | 'E_INVALID_OPTION'
  /** A cache key cannot be used (empty, not a string, a lone surrogate). */
  | 'E_INVALID_KEY'
  /** One tier operation failed (emitted as an `error` event, never thrown at readers). */
  | 'E_TIER_FAILED'
  /** No tier accepted a write or delete (every one failed or had its circuit open). */
  | 'E_NOT_ACCEPTED'
  /** A tier or discovery could not reach its servers. */
  | 'E_UNREACHABLE'
  /** A tier was used before `connect()` or after `close()`. */
  | 'E_NOT_CONNECTED'
  | 'E_CLOSED'
  /** The Cassandra keyspace or tables are missing, or could not be created. */
  | 'E_SCHEMA'
  /** Stored bytes could not be decoded. */
  | 'E_DECODE'
  /** A read-through caller waited longer than `hardTimeout`. */
  | 'E_CACHE_TIMEOUT'
  /** An ElastiCache configuration endpoint could not be asked or gave no configuration. */
  | 'E_DISCOVERY'
  /** An ElastiCache configuration reply is malformed. */
  | 'E_CLUSTER_CONFIG'
  /** One memcached server failed a request (see {@link MemcachedError.kind}). */
  | 'E_MEMCACHED'
  /** A tier did not answer in time (see {@link TierTimeoutError}). */
  | 'E_TIER_TIMEOUT'
  /** A value is larger than a tier stores (see `TierCapabilities.maxValueBytes`). */
  | 'E_TOO_LARGE'
  /** The chain cannot do what was asked, e.g. `iterate()` when its farthest tier cannot list its keys. */
  | 'E_NOT_SUPPORTED'
  /** An optional peer dependency an option needs is not installed (e.g. ioredis for the bus). */
  | 'E_MISSING_PEER'
  /** `cacheEntryContext()` was called where no cached computation runs. */
  | 'E_NO_ENTRY_CONTEXT'
  /**
   * A lookup found a cached "not found" error (`cacheEmpty.errors`) of a class its own options
   * do not name.
   */
  | 'E_CACHED_ERROR';

/** A lifecycle or protocol failure; `code` says which. */
export class TieredCacheError extends Error {
  override readonly name: string = 'TieredCacheError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * An optional peer dependency, loaded by `load` (the caller's own `import()`, so that bundlers
 * and module mocks see the package's name); when it cannot be loaded, a `TieredCacheError`
 * `E_MISSING_PEER` with `message` (which says what to install), the import's error as its cause.
 */
export async function loadPeer<T>(load: () => Promise<T>, message: string): Promise<T> {
  try {
    return await load();
  } catch (err) {
    throw new TieredCacheError('E_MISSING_PEER', message, { cause: err });
  }
}

/** An invalid option. `path` is where it sits, e.g. `tiers[1].servers[0]`. */
export class InvalidOptionError extends TypeError {
  override readonly name = 'InvalidOptionError';
  readonly code = 'E_INVALID_OPTION' as const;
  constructor(
    readonly path: string,
    problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

/** A cache key that cannot be used. */
export class InvalidKeyError extends TypeError {
  override readonly name = 'InvalidKeyError';
  readonly code = 'E_INVALID_KEY' as const;
}

/** Emitted as `error` (when someone listens) for every tier failure; never thrown at readers. */
export class TierError extends TieredCacheError {
  override readonly name = 'TierError';
  constructor(
    readonly tier: string,
    readonly operation: string,
    readonly key: string | undefined,
    cause: unknown,
  ) {
    super('E_TIER_FAILED', `${tier}: ${operation}${quoteKey(key)} failed: ${messageOf(cause)}`, {
      cause,
    });
  }
}

/** Rejection of a caller that waited longer than `hardTimeout` without a stale value to fall back on. */
export class CacheTimeoutError extends TieredCacheError {
  override readonly name = 'CacheTimeoutError';
  constructor(
    readonly key: string,
    readonly timeoutMs: number,
  ) {
    super(
      'E_CACHE_TIMEOUT',
      `getOrSet(${JSON.stringify(key)}): no value within hardTimeout ${timeoutMs} ms (the factory goes on and stores its result)`,
    );
  }
}

/** Raised (as an `error` event, never to a caller of `get`) when stored bytes cannot be decoded. */
export class CacheDecodeError extends TieredCacheError {
  override readonly name = 'CacheDecodeError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_DECODE', message, options);
  }
}

/** A configuration endpoint could not be asked, or did not answer with a cluster configuration. */
export class DiscoveryError extends TieredCacheError {
  override readonly name = 'DiscoveryError';

  constructor(
    message: string,
    /** `host:port` of the configuration endpoint. */
    readonly endpoint: string,
    /**
     * True when the endpoint answered, but as a plain memcached: `ERROR` to `config get cluster`
     * and `END` (or `ERROR`) to `get AmazonElastiCache:cluster`.
     */
    readonly notElastiCache: boolean,
    options?: { cause?: unknown },
  ) {
    super('E_DISCOVERY', message, options);
  }
}

/** A configuration reply that is not a valid ElastiCache cluster configuration. */
export class ClusterConfigError extends TieredCacheError {
  override readonly name = 'ClusterConfigError';
  constructor(message: string) {
    super('E_CLUSTER_CONFIG', message);
  }
}

/**
 * What went wrong talking to a memcached server:
 * - `connection`: the socket could not be opened (refused, unreachable, connect timeout) or was
 *   closed or reset under a request: the server is probably gone;
 * - `timeout`: a connected server did not answer in time (hung, overloaded, or a huge value);
 * - `server`: the server answered with an error status.
 */
export type MemcachedErrorKind = 'connection' | 'timeout' | 'server';

/** An error talking to one memcached server. */
export class MemcachedError extends TieredCacheError {
  override readonly name: string = 'MemcachedError';
  /** See {@link MemcachedErrorKind}. */
  readonly kind: MemcachedErrorKind;
  /** The binary protocol status the server answered with, for `server` errors. */
  readonly status: number | undefined;
  /**
   * Only this server failed while others of the tier still answer: the store counts and reports
   * it, but leaves the tier's circuit closed (see `TierFailure`). Set by the tier.
   */
  partial = false;

  constructor(
    message: string,
    /** `host:port` of the server. */
    readonly server: string,
    /**
     * True for connection errors and timeouts (the request may be sent again, possibly to another
     * server); false when the server answered with an error status.
     */
    readonly retryable: boolean,
    options?: { cause?: unknown; kind?: MemcachedErrorKind; status?: number },
  ) {
    super('E_MEMCACHED', message, options);
    this.kind = retryable ? (options?.kind ?? 'connection') : 'server';
    this.status = options?.status;
  }

  /** The server did not answer in time (see `TierFailure`). */
  get timedOut(): boolean {
    return this.kind === 'timeout';
  }
}

/**
 * A value larger than a tier stores: raised by a tier that refuses it (a skip for the store, not
 * a failure), and by the store when no shared tier can hold it.
 */
export class ValueTooLargeError extends TieredCacheError {
  override readonly name = 'ValueTooLargeError';
  /** See `TierFailure`. */
  readonly tooLarge = true;
  constructor(
    message: string,
    /** The encoded entry's size, bytes. */
    readonly bytes: number,
    /** The largest size accepted, bytes. */
    readonly limit: number,
  ) {
    super('E_TOO_LARGE', message);
  }
}

/**
 * A tier's backend did not answer one request in time (a hung or overloaded server, or a server
 * that gave up on the request itself). Carries `timedOut` (see `TierFailure`), so the store's
 * circuit opens on it at once.
 */
export class TierTimeoutError extends TieredCacheError {
  override readonly name = 'TierTimeoutError';
  /** See `TierFailure`. */
  readonly timedOut = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_TIER_TIMEOUT', message, options);
  }
}

/** What an error says of the tier failure behind it (see `TierFailure` in the tier interface). */
export function failureOf(error: unknown): {
  timedOut: boolean;
  partial: boolean;
  tooLarge: boolean;
} {
  const e = (typeof error === 'object' && error !== null ? error : {}) as Record<string, unknown>;
  return {
    timedOut: e.timedOut === true,
    partial: e.partial === true,
    tooLarge: e.tooLarge === true,
  };
}

/** The message of anything thrown: an `Error`'s own, else its string form. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** ` "key"` for messages, or nothing without a key. */
export function quoteKey(key: string | undefined): string {
  return key === undefined ? '' : ` ${JSON.stringify(key)}`;
}
