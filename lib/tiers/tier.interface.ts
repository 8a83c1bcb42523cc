import type { Tagged } from '../serialization/codec';

/**
 * One cache backend, as the tier chain sees it.
 *
 * Tiers are deliberately dumb: they move payloads under final keys with a time to live.
 * Envelopes, TTL caps, backfill, namespaces, circuit breaking and stats live once, in the store
 * above them. A tier says what it can do in {@link Tier.capabilities}; the store picks each
 * tier's role from those (which one holds leases, which one counts), never from what it is.
 *
 * Conventions every tier follows:
 * - `key` is the final key, already namespaced and hashed by the store to fit every tier's
 *   {@link TierCapabilities.maxKeyBytes}.
 * - `ttlMs` is milliseconds; `0` means "no expiry". A tier rounds it up to its own
 *   {@link TierCapabilities.ttlResolutionMs}.
 * - A miss is `undefined`, never an exception. An exception means the backend failed.
 *
 * Remote tiers hold `Buffer`s (the codec's bytes). A {@link LocalTier} holds
 * {@link LocalRecord}s, built by the store.
 */
export interface Tier<P = Buffer> {
  /** Name used in stats, logs and error events, e.g. `memcached[1]`. */
  readonly name: string;
  /** What the backend is (`memory`, `memcached`, `cassandra`, or your own), for stats and logs. */
  readonly kind: string;
  /** What this tier can do; read once, when the store is built. */
  readonly capabilities: TierCapabilities;

  /** Opens connections (and creates schema where configured). Throws when the backend is unreachable. */
  connect(): Promise<void>;
  get(key: string): Promise<P | undefined>;
  /** Same order as `keys`; batched (one round trip per server where the backend allows it). */
  getMany(keys: readonly string[]): Promise<(P | undefined)[]>;
  set(key: string, value: P, ttlMs: number): Promise<void>;
  setMany(entries: readonly TierWrite<P>[]): Promise<void>;
  /** Deletes `key`; resolves whether it held something. */
  delete(key: string): Promise<boolean>;
  /** Deletes every key; resolves whether any of them held something. */
  deleteMany(keys: readonly string[]): Promise<boolean>;
  /**
   * Adds only when absent, atomically for every process sharing the tier; resolves true when
   * this call stored the value. Required when {@link TierCapabilities.leases} is set.
   */
  add?(key: string, value: P, ttlMs: number): Promise<boolean>;
  /**
   * Deletes `key` only while it holds `expected` (compare-and-delete, atomic on the server);
   * resolves true when this call deleted it. Required when {@link TierCapabilities.leases} is set.
   */
  deleteIf?(key: string, expected: P): Promise<boolean>;
  /**
   * Adds `by` (may be negative) to the counter at `key`, creating it at `by` when absent, and
   * resolves the new value. Never retried in a way that could count twice. Required when
   * {@link TierCapabilities.counters} is set.
   */
  increment?(key: string, by: number, ttlMs: number): Promise<number>;
  /**
   * Stores the number `n` (a non-negative safe integer) under `key` unless a number at least as
   * high is stored there already: writes of numbers may arrive in any order, the highest stays (a
   * max-register). The value is stored as ASCII decimal digits, so `get` answers those bytes (the
   * codec reads them as a number); a {@link LocalTier} holds `localRecord(n)` instead, as it does
   * its counters. `ttlMs` as for `set` (0 = none); a raise that finds a number at least as high
   * changes nothing, its expiry included. Idempotent, so safe to send again after a lost answer.
   * Each tier says what else may write such a key (Cassandra: nothing but `raise`).
   *
   * @throws RangeError when `n` is not a non-negative safe integer.
   */
  raise?(key: string, n: number, ttlMs: number): Promise<void>;
  /**
   * Every live entry whose key starts with `prefix` (`''`: all of them), as `[key, payload]`, in
   * no particular order: what the store's `iterate()` reads. A tier that holds many entries
   * lists them page by page, never all at once; an entry written or deleted while it lists may
   * or may not be listed. Made for tools and maintenance, not hot paths: it may be a scan of
   * everything the backend holds. Required when {@link TierCapabilities.enumerate} is set.
   */
  entries?(prefix: string): AsyncIterable<[key: string, payload: P]>;
  /** Closes every socket; the tier is unusable afterwards. */
  close(): Promise<void>;
}

/** What a tier can do. */
export interface TierCapabilities {
  /**
   * `true`: process-private and synchronous (a {@link LocalTier}): it holds {@link LocalRecord}s,
   * answers `peek`/`put` at once and may be emptied whenever this process likes. At most one
   * local tier per chain. `false`: shared with other processes (it holds bytes).
   */
  readonly local: boolean;
  /**
   * How this tier can hold read-through leases, which every process sharing it must see:
   * `'atomic'` (one server's atomic add, e.g. memcached, cheap), `'consensus'` (a consensus
   * round, e.g. a Cassandra lightweight transaction, slower), or `false`. The store takes the
   * farthest tier of the cheapest kind.
   */
  readonly leases: 'atomic' | 'consensus' | false;
  /**
   * Whether it keeps counters every process sees (`increment`), so that it can be the counter
   * authority and hold the namespace generation, and what `increment` resolves:
   * - `'atomic'`: this call's own result, as the server computed it (memcached `incr`): two
   *   concurrent increments never resolve the same value, so it can hand out sequence numbers;
   * - `'additive'`: every increment is counted exactly once, but the value resolved is the total
   *   read after this call's update, which may include concurrent increments (a Cassandra
   *   counter: an UPDATE, then a SELECT);
   * - `false`: no counters.
   *
   * The store takes the farthest shared tier that counts (see the store's `counters` option).
   */
  readonly counters: 'atomic' | 'additive' | false;
  /**
   * Whether it can list its entries ({@link Tier.entries}), e.g. the memory tier and Cassandra
   * (by paging through its table); memcached cannot. A store can be iterated when its farthest
   * tier can, since that one holds everything the chain stored.
   */
  readonly enumerate: boolean;
  /** The unit its TTLs are kept in, ms: expiries are rounded up to it (e.g. 1000 for seconds). */
  readonly ttlResolutionMs: number;
  /** The longest key it accepts, in bytes of UTF-8 (`Infinity`: no limit). */
  readonly maxKeyBytes: number;
  /**
   * The largest value it stores, in bytes of the encoded entry (default `Infinity`: no limit).
   * The store never sends it a larger one: it deletes the key on this tier instead (so an older
   * value is not served after the newer write), and counts a skip, not a failure.
   */
  readonly maxValueBytes?: number;
}

/**
 * What a tier's error may say of itself, as properties of the error it rejects with (any error
 * object can carry them; the built-in tiers' errors do):
 * - `timedOut: true`: the backend did not answer in time. The store's circuit breaker opens on
 *   the first one (`circuitBreaker.timeouts`), so a hung server costs one timeout per breaker
 *   window, not one per request.
 * - `partial: true`: only part of the tier failed (one memcached server of several); the store
 *   counts and reports it, but the tier's circuit stays closed for the keys that still work.
 * - `tooLarge: true`: the backend refused the value for its size; a skip, not a failure.
 */
export interface TierFailure {
  readonly timedOut?: boolean;
  readonly partial?: boolean;
  readonly tooLarge?: boolean;
}

/**
 * The longest memcached key, in bytes: the one rule of the built-in remote tiers that shapes
 * final keys (longer ones are hashed).
 */
export const MAX_KEY_BYTES = 250;

/**
 * How long a local tier in front of shared ones keeps an entry unless its `ttl` option says
 * otherwise, ms: the staleness bound between app instances (a write or delete made by another
 * instance reaches this one's local tier at most this late). A chain with no shared tier has no
 * such bound to keep, and no default cap.
 */
export const DEFAULT_LOCAL_TTL_CAP_MS = 5000;

export interface TierWrite<P = Buffer> {
  key: string;
  value: P;
  ttlMs: number;
}

/** What few local records have: kept apart, so that the others do not carry it. */
export interface LocalRecordExtras {
  /** The encoded entry, decoded for each reader, when `value` is not kept. */
  readonly encoded?: Buffer;
  /**
   * Entries under a hashed final key only: the key that was hashed, so that iterating a local
   * tier keyed by final keys can name the entry (see `KeyBuilder.hashedFrom`).
   */
  readonly key?: string;
  /** Tagged entries only: their tags and when they were written. */
  readonly tagged?: Tagged;
}

/**
 * What a local tier keeps for an entry. The store builds records (see `store/local-records.ts`);
 * a local tier only stores them and counts their `size`. One class, every field always set (one
 * object shape keeps the read path monomorphic), and what few records have in
 * {@link LocalRecordExtras}: a tier holds one record per entry, so each field costs every entry
 * 8 bytes.
 *
 * How a reader gets the value depends on the store's payload mode:
 * - shared (`serialize: false`): `value` is the very object that was set, handed out as it is;
 * - copies (the default): either {@link copy} is set and `value` is a private JSON tree that every
 *   reader gets a copy of, or `value` is undefined and {@link encoded} holds the entry's bytes,
 *   decoded for every reader (values a JSON body cannot carry: Date, Map, BigInt…). Primitives
 *   are immutable and kept as they are in both modes.
 */
export class LocalRecord {
  /**
   * `undefined`: readers get `value` as it is. Otherwise `value` is a private JSON tree, copied
   * for each reader with this copy hint (its `nestedKeys`), or `null` until the first read works
   * the hint out.
   */
  copy: readonly string[] | null | undefined;

  constructor(
    readonly value: unknown,
    /** Epoch ms after which the entry is gone; `0` = never. */
    readonly expiresAt: number,
    /** The entry's encoded size in bytes: what counts against a byte budget. */
    readonly size: number,
    /** Read-through entries only: epoch ms after which the value is stale (`0` = never). */
    readonly staleAt: number | undefined = undefined,
    /** Read-through entries only: ms the value took to compute. */
    readonly delta: number | undefined = undefined,
    copy: readonly string[] | null | undefined = undefined,
    private readonly extras: LocalRecordExtras | undefined = undefined,
  ) {
    this.copy = copy;
  }

  /** The encoded entry, decoded for each reader, when `value` is not kept. */
  get encoded(): Buffer | undefined {
    return this.extras?.encoded;
  }

  /** See {@link LocalRecordExtras.key}. */
  get key(): string | undefined {
    return this.extras?.key;
  }

  /** Tagged entries only: their tags and when they were written. */
  get tagged(): Tagged | undefined {
    return this.extras?.tagged;
  }
}

/** A record holding `value` as it is, with no expiry or metadata (counters, leases, tests). */
export function localRecord(value: unknown, size = 16, expiresAt = 0): LocalRecord {
  return new LocalRecord(value, expiresAt, size);
}

/** A process-private tier with synchronous access, for the store's fast paths. */
export interface LocalTier extends Tier<LocalRecord> {
  readonly capabilities: TierCapabilities & { readonly local: true };
  /** Synchronous read. */
  peek(key: string): LocalRecord | undefined;
  /** Synchronous write. */
  put(key: string, record: LocalRecord, ttlMs: number): void;
  /** Drops everything (it is private to this process, so that is always safe). */
  clear(): void;
}

/** Whether `tier` is a {@link LocalTier}. */
export function isLocalTier(tier: Tier<unknown>): tier is LocalTier {
  return tier.capabilities.local;
}
