import type { Clock } from '../clock';
import type { KeyBuilder } from '../keys/key-builder';
import type { Codec } from '../serialization/codec';
import type { Backfill } from './backfill';
import type { BackgroundWork } from './background';
import type { Coherence } from './coherence';
import type { Generation } from './generation';
import type { MutationLog } from './mutation-log';
import type { FailureReport, TierSlot } from './tier-slot';

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
}
