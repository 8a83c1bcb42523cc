import type { Clock } from '../clock';
import { at, describeValue, invalid } from '../options';
import { expiresAtOf } from '../serialization/codec';
import { createTier } from '../tiers/create-tier';
import { DEFAULT_LOCAL_TTL_CAP_MS, type LocalTier, type Tier } from '../tiers/tier.interface';
import type { TierOptions } from '../tiers/tier-options';
import type { CacheEvents } from './cache-events';
import type { CircuitBreakerOptions } from './circuit-breaker';
import { TierSlot, type FailureReport } from './tier-slot';

/** What the chain is built from. */
export interface ChainSetup {
  tiers: ReadonlyArray<TierOptions | Tier<unknown>> | undefined;
  /** Whether the store has a `keyFn` (then even the local tier holds final keys). */
  keyFn: boolean;
  circuitBreaker: CircuitBreakerOptions | undefined;
  /** The store's `counters` option. */
  counters: unknown;
  clock: Clock;
  report: FailureReport;
  events: CacheEvents;
}

/**
 * The tiers of one store, nearest first, each in its guarded slot, and the role each plays,
 * read from its capabilities alone:
 * - the local tier (at most one); when it is the nearest, the synchronous fast path;
 * - the counter authority, which holds the namespace generation: the farthest shared tier that
 *   counts; and the counter tier, where `increment` counts: the authority, or with `counters:
 *   'atomic'` the farthest shared tier whose counters are atomic;
 * - the lease tier: the farthest tier with the cheapest leases (`atomic` before `consensus`);
 * - the key limit: the smallest `maxKeyBytes` of all.
 */
export class TierChain {
  readonly slots: readonly TierSlot[];
  readonly local: TierSlot | undefined;
  /** The local tier when it is the nearest one. */
  readonly near: LocalTier | undefined;
  readonly authority: TierSlot | undefined;
  readonly counter: TierSlot | undefined;
  /** See `StoreParts.writeBound`. */
  readonly writeBound: number;
  readonly lease: TierSlot | undefined;
  readonly leaseIndex: number;
  readonly maxKeyBytes: number;

  constructor(setup: ChainSetup) {
    const tiers = setup.tiers ?? [{ type: 'memory' }];
    if (!Array.isArray(tiers) || tiers.length === 0)
      throw invalid(
        'tiers',
        'must be a non-empty array of tier options ({ type: "memory" | "memcached" | "cassandra", … }) or tier objects',
      );
    const seen = new Map<string, number>();
    const built = tiers.map((spec, i) => {
      const type = (spec as { type?: unknown } | null)?.type;
      const count = (seen.get(String(type)) ?? 0) + 1;
      seen.set(String(type), count);
      const name = typeof type === 'string' && count > 1 ? `${type}[${count - 1}]` : type;
      return createTier(spec, {
        path: at('tiers', i),
        name: (spec as { name?: string }).name ?? (name as string | undefined),
        clock: setup.clock,
        // When a payload's entry expires: the TTL of memcached's warm copies (header only).
        expiresAt: expiresAtOf,
      });
    });
    // A local tier in front of shared ones keeps entries at most the staleness bound by default.
    const anyShared = built.some((b) => !b.tier.capabilities.local);
    this.slots = built.map(({ tier, ttlCap, shareObjects, perHost }) => {
      const local = tier.capabilities.local;
      return new TierSlot({
        tier,
        ttlCap: ttlCap ?? ((local && anyShared) || perHost ? DEFAULT_LOCAL_TTL_CAP_MS : 0),
        mode: !local ? 'encoded' : shareObjects ? 'shared' : 'copies',
        byCallerKey: local && !setup.keyFn,
        perHost,
        circuitBreaker: setup.circuitBreaker,
        clock: setup.clock,
        report: setup.report,
        events: setup.events,
      });
    });
    const locals = this.slots.filter((s) => s.local);
    if (locals.length > 1) throw invalid('tiers', 'at most one local (memory) tier');
    this.local = locals[0];
    this.near = this.slots[0].local ? (this.slots[0].tier as LocalTier) : undefined;
    // A per-host tier is not shared between hosts: no generation, counter or lease there.
    const shared = (s: TierSlot) => !s.local && !s.perHost;
    this.authority = this.slots.findLast((s) => shared(s) && s.tier.capabilities.counters);
    this.leaseIndex = -1;
    for (const kind of ['atomic', 'consensus'] as const) {
      this.leaseIndex = this.slots.findLastIndex(
        (s) => !s.perHost && s.tier.capabilities.leases === kind,
      );
      if (this.leaseIndex >= 0) break;
    }
    this.lease = this.slots[this.leaseIndex];
    this.counter = this.authority;
    const mode = setup.counters ?? 'farthest';
    if (mode === 'atomic') {
      this.counter = this.slots.findLast(
        (s) => shared(s) && s.tier.capabilities.counters === 'atomic',
      );
      if (this.counter === undefined)
        throw invalid(
          'counters',
          `'atomic' needs a shared tier whose counters are atomic (memcached); none of ${this.slots.map((s) => s.name).join(', ')} has them`,
        );
    } else if (mode !== 'farthest') {
      throw invalid(
        'counters',
        `must be 'farthest' or 'atomic', got ${typeof mode === 'string' ? JSON.stringify(mode) : describeValue(mode)}`,
      );
    }
    const nearestShared = this.slots.findIndex(shared);
    this.writeBound =
      this.leaseIndex >= 0
        ? this.leaseIndex
        : nearestShared >= 0
          ? nearestShared
          : this.slots.length - 1;
    this.maxKeyBytes = Math.min(...this.slots.map((s) => s.tier.capabilities.maxKeyBytes));
    // Tombstones where another instance's backfill could undo a delete (see `tombstone.ts`).
    const farthest = this.slots.findLastIndex(shared);
    this.slots.forEach((s, i) => {
      s.tombstones =
        !s.local && i < farthest && s.tier.capabilities.leases === 'atomic' && s !== this.counter;
    });
  }
}
