/**
 * One cache backend, as the tier chain sees it.
 *
 * Tiers are deliberately dumb: they move opaque payloads (bytes, for every remote tier) under
 * final keys with a time to live. Envelopes, TTL caps, backfill, namespaces, circuit breaking and
 * stats live once, in the store above them (`store/tiered-store.ts`).
 *
 * Conventions every tier follows:
 * - `key` is the final key, already namespaced and hashed by the store: at most 250 bytes of
 *   UTF-8, no spaces, no control characters.
 * - `ttlMs` is milliseconds; `0` means "no expiry". A tier rounds it to its own resolution
 *   (memcached and Cassandra: whole seconds, rounded up).
 * - A miss is `undefined`, never an exception. An exception means the backend failed.
 */
export interface Tier<P = Buffer> {
  /** `memory`, `memcached` or `cassandra`. */
  readonly kind: TierKind;
  /** Human-readable name used in stats, logs and error events, e.g. `memcached[1]`. */
  readonly name: string;

  /** Opens connections (and creates schema where configured). Throws when the backend is unreachable. */
  connect(): Promise<void>;
  get(key: string): Promise<P | undefined>;
  /** Same order as `keys`; batched (one round trip per server where the backend allows it). */
  getMany(keys: readonly string[]): Promise<(P | undefined)[]>;
  set(key: string, value: P, ttlMs: number): Promise<void>;
  setMany(entries: readonly TierWrite<P>[]): Promise<void>;
  /** Adds only when absent; resolves true when this call stored the value. */
  add(key: string, value: P, ttlMs: number): Promise<boolean>;
  /**
   * Deletes `key` only while it holds `expected` (compare-and-delete, atomic on the server);
   * resolves true when this call deleted it. Leases use it: only their holder releases them.
   */
  deleteIf(key: string, expected: P): Promise<boolean>;
  delete(key: string): Promise<void>;
  deleteMany(keys: readonly string[]): Promise<void>;
  /**
   * Adds `by` (may be negative) to the counter at `key`, creating it at `by` when absent
   * (memcached cannot go below zero: it floors at 0). Never retried in a way that could count twice.
   */
  increment(key: string, by: number, ttlMs: number): Promise<number>;
  /** Closes every socket; the tier is unusable afterwards. */
  close(): Promise<void>;
}

export type TierKind = 'memory' | 'memcached' | 'cassandra';

export interface TierWrite<P = Buffer> {
  key: string;
  value: P;
  ttlMs: number;
}
