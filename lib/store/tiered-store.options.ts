import type { BusOptions } from '../bus/bus.options';
import type { Clock } from '../clock';
import { optionNames } from '../options';
import type { KeyBuilderOptions } from '../keys/key-builder';
import type { CodecOptions } from '../serialization/codec';
import type { Tier } from '../tiers/tier.interface';
import type { TierOptions } from '../tiers/tier-options';
import type { CircuitBreakerOptions } from './circuit-breaker';

/**
 * Options of {@link createTieredStore}. A key that is none of these (nor of a built-in tier's,
 * the serializer's or the circuit breaker's options) is an `InvalidOptionError` naming its path
 * and the nearest valid name: `tiers[0].ttL: unknown option (did you mean "ttl"?)`.
 */
export interface TieredStoreOptions extends KeyBuilderOptions {
  /**
   * The tiers, nearest first: options of a built-in tier, or objects of your own implementing
   * {@link Tier} (see the README's "Writing a tier"). Any subset works: memory only, memcached
   * only, memory + Cassandra… The same type may appear more than once (e.g. a memcached on
   * localhost with a 1 s cap in front of the shared memcached cluster); at most one local tier.
   * @default [{ type: 'memory' }]
   */
  tiers?: Array<TierOptions | Tier<unknown>>;
  /**
   * Time to live in ms for `set` calls that give none. `0` = never expire.
   * @default 0
   */
  ttl?: number;
  /** Serialization: compression threshold and level. */
  serializer?: CodecOptions;
  /**
   * Which tier `increment` counts on:
   * - `'farthest'`: the farthest shared tier that counts (Cassandra's counter table when there is
   *   one, else memcached). Every increment is counted exactly once and survives memcached
   *   restarts, but Cassandra cannot say what its own update made the total: the value resolved
   *   is the counter read after this call's update, which includes every increment finished
   *   before this call began and this one, and possibly some made concurrently (two calls may
   *   resolve the same number). Right for totals (hits, quotas), not for sequence numbers.
   * - `'atomic'`: the farthest shared tier whose counters are atomic (memcached `incr`): each call
   *   resolves its own result, so concurrent calls never resolve the same number (sequence
   *   numbers, ids). Memcached keeps counters in memory only: when the node holding one restarts,
   *   or evicts it, or its TTL ends, the counter is lost and the next increment starts again from
   *   `by` (numbers handed out before come again). Throws when no shared tier has atomic counters.
   *
   * Either way the namespace generation (`clear()`) stays on the farthest shared tier that counts.
   * Anything else is an `InvalidOptionError`.
   * @default 'farthest'
   */
  counters?: 'farthest' | 'atomic';
  /** Per-tier circuit breaker. */
  circuitBreaker?: CircuitBreakerOptions;
  /**
   * How often (ms) the namespace generation is re-read from the shared tiers, so that a `clear()`
   * made by another instance reaches this one.
   * @default 5000
   */
  generationRefreshMs?: number;
  /**
   * How long (ms) this instance trusts the tag invalidation times it read from the shared tiers
   * without a bus: another instance's `invalidateTags` reaches its reads within this bound. With
   * the bus up, invalidations arrive at once and times are re-read at most once a minute.
   * @default 1000
   */
  tagRefreshMs?: number;
  /**
   * The invalidation bus: keeps the local tiers of every instance of this namespace coherent
   * (see the README's "Coherence across instances"). Without it, another instance's write or
   * delete reaches this one's local tiers only when their entries expire (their TTL cap).
   * @default undefined: no bus
   */
  bus?: BusOptions;
  /**
   * Time source; inject one in tests to advance time instead of sleeping.
   * @default systemClock (`Date.now()`, read at most once per millisecond)
   */
  clock?: Clock;
}

/** The names of {@link TieredStoreOptions}; any other key fails (see `TieredStore`). */
export const TIERED_STORE_OPTIONS = optionNames<TieredStoreOptions>({
  tiers: true,
  ttl: true,
  serializer: true,
  circuitBreaker: true,
  counters: true,
  generationRefreshMs: true,
  tagRefreshMs: true,
  clock: true,
  bus: true,
  namespace: true,
  version: true,
  keyFn: true,
});
