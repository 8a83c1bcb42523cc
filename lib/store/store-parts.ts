import { systemClock, type Clock } from '../clock';
import { KeyBuilder } from '../keys/key-builder';
import { Codec } from '../serialization/codec';
import type { LocalTier } from '../tiers/tier.interface';
import { Backfill } from './backfill';
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
}

/** What the parts report to the store that owns them (its events). */
export interface StoreHooks {
  report: FailureReport;
  /** Whether anyone listens to the bus's `invalidated` events. */
  listening: () => boolean;
  emit: (event: BusEvent) => void;
}

/** Builds the parts of one store from its options (checked by then for unknown keys). */
export function assembleParts(options: TieredStoreOptions, hooks: StoreHooks): StoreParts {
  const clock = options.clock ?? systemClock;
  const codec = new Codec(options.serializer, 'serializer');
  const defaultTtl = ttlOption('ttl', options.ttl, 0);
  const refreshMs = ttlOption('generationRefreshMs', options.generationRefreshMs, 5000);
  const tagRefreshMs = ttlOption('tagRefreshMs', options.tagRefreshMs, 1000);
  const { report } = hooks;
  const chain = new TierChain({
    tiers: options.tiers,
    keyFn: options.keyFn !== undefined,
    circuitBreaker: options.circuitBreaker,
    counters: options.counters,
    clock,
    report,
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
    listening: hooks.listening,
    emit: hooks.emit,
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
  };
}
