import type { Clock } from '../clock';
import type { KeyBuilder } from '../keys/key-builder';
import type { Codec } from '../serialization/codec';
import type { Backfill } from './backfill';
import type { Generation } from './generation';
import type { MutationLog } from './mutation-log';
import type { TierSlot } from './tier-slot';

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
  /** The tier holding counters and the generation: the farthest shared one that counts. */
  readonly authority: TierSlot | undefined;
  /** The tier holding read-through leases. */
  readonly lease: TierSlot | undefined;
}
