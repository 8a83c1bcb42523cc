import type { EventEmitter } from 'node:events';
import { systemClock, type Clock } from '../clock';
import { TierError } from '../errors';
import { KeyBuilder } from '../keys/key-builder';
import { Codec } from '../serialization/codec';
import type { LocalTier } from '../tiers/tier.interface';
import { Backfill } from './backfill';
import { CacheEvents } from './cache-events';
import { BackgroundWork } from './background';
import { Coherence, type BusEvent } from './coherence';
import { Generation } from './generation';
import { MutationLog } from './mutation-log';
import { TagTimes } from './tag-times';
import { TierChain } from './tier-chain';
import type { FailureReport, TierSlot } from './tier-slot';
import type { TieredStoreOptions } from './tiered-store.options';
import { ttlOption } from './writer';

/** The parts one store is made of, built once by `TieredStore` and shared by its reader and writer. */
export interface StoreParts {
  readonly slots: readonly TierSlot[];
  readonly keys: KeyBuilder;
  readonly codec: Codec;
  readonly clock: Clock;
  readonly mutations: MutationLog;
  readonly backfill: Backfill;
  readonly generation: Generation;
  /** Default TTL of writes that give none, ms. */
  readonly defaultTtl: number;
  /** The tier holding the namespace generation: the farthest shared one that counts. */
  readonly authority: TierSlot | undefined;
  /** The tier `increment` counts on (see the store's `counters` option). */
  readonly counter: TierSlot | undefined;
  /**
   * Index of the farthest tier a read-through write (`setEntry`) waits for: the lease tier, else
   * the nearest shared one; farther tiers' writes go on in the background.
   */
  readonly writeBound: number;
  readonly background: BackgroundWork;
  /** Where failures the store itself finds go (the `error` event). */
  readonly report: FailureReport;
  /** The tier holding read-through leases. */
  readonly lease: TierSlot | undefined;
  /** The invalidation bus's side of the store: told of every key written or deleted. */
  readonly coherence: Coherence;
  /** When each tag was last invalidated. */
  readonly tags: TagTimes;
  /** The tier chain the slots come from (the local fast path, the lease tier's index). */
  readonly chain: TierChain;
  /** The store's typed events. */
  readonly events: CacheEvents;
}

/**
 * Builds the parts of one store from its options (checked by then for unknown keys). `owner`,
 * the store, gets their reports as its events: `error` (a `TierError`), `bus`, and
 * `listener-error` (a listener of `events` threw).
 */
export function assembleParts(options: TieredStoreOptions, owner: EventEmitter): StoreParts {
  const events = new CacheEvents((name, err) => owner.emit('listener-error', name, err));
  const report: FailureReport = (tier, op, key, err) => {
    const listened = owner.listenerCount('error') > 0;
    if (!listened && !events.listened['tier-error']) return;
    const error = new TierError(tier, op, key, err);
    if (listened) owner.emit('error', error);
    events.emit('tier-error', error);
  };
  const clock = options.clock ?? systemClock;
  const codec = new Codec(options.serializer, 'serializer');
  const defaultTtl = ttlOption('ttl', options.ttl, 0);
  const refreshMs = ttlOption('generationRefreshMs', options.generationRefreshMs, 5000);
  const tagRefreshMs = ttlOption('tagRefreshMs', options.tagRefreshMs, 1000);
  const chain = new TierChain({
    tiers: options.tiers,
    keyFn: options.keyFn !== undefined,
    circuitBreaker: options.circuitBreaker,
    counters: options.counters,
    clock,
    report,
    events,
  });
  const { slots, local, authority, lease } = chain;
  const keys = new KeyBuilder(options, chain.maxKeyBytes);
  const mutations = new MutationLog();
  const background = new BackgroundWork();
  const generation = new Generation({
    keys,
    authority,
    clock,
    refreshMs,
    background,
    onChange: () => {
      // New final keys, an empty local tier, and no backfill from reads begun before (they
      // read the old generation; the local tier may be keyed by caller keys).
      if (local) (local.tier as LocalTier).clear();
      mutations.startOver();
    },
  });
  let coherence: Coherence | undefined = undefined;
  const tags = new TagTimes({
    authority,
    keys,
    codec,
    clock,
    refreshMs: tagRefreshMs,
    busUp: () => coherence?.isUp === true,
  });
  coherence = new Coherence({
    bus: options.bus,
    slots,
    keys,
    mutations,
    generation,
    tags,
    listening: () => owner.listenerCount('bus') > 0 || events.listened.bus,
    emit: (event: BusEvent) => {
      owner.emit('bus', event);
      events.emit('bus', event);
    },
  });
  return {
    slots,
    keys,
    codec,
    clock,
    mutations,
    backfill: new Backfill(slots, mutations, codec, clock, background),
    generation,
    defaultTtl,
    authority,
    counter: chain.counter,
    writeBound: chain.writeBound,
    background,
    report,
    lease,
    coherence,
    tags,
    chain,
    events,
  };
}
