import type { Clock } from '../clock';
import type { CacheRecord, Codec } from '../serialization/codec';
import { isLocalTier, type LocalRecord, type TierWrite } from '../tiers/tier.interface';
import type { BackgroundWork } from './background';
import { recordFor } from './local-records';
import type { MutationLog } from './mutation-log';
import { metaOf } from './stored-entry';
import type { TierSlot } from './tier-slot';

/** A hit to backfill: the caller's key, the final key, the decoded record and what the tier held. */
export interface Found {
  key: string;
  k: string;
  record: CacheRecord;
  payload: unknown;
}

/**
 * Copies hits found in a far tier into the nearer ones, with the entry's remaining TTL capped
 * per tier, without delaying the reader: a local tier is written at once, shared ones in the
 * background (one batch per tier); a tier whose `maxValueBytes` the entry exceeds is skipped. A
 * read that began before a local mutation of the key (or a new generation) copies nothing: the
 * newer write or delete wins. Into a tier that keeps tombstones, copies are `add`s: a delete or
 * write another instance made meanwhile wins there too.
 */
export class Backfill {
  constructor(
    private readonly slots: readonly TierSlot[],
    private readonly mutations: MutationLog,
    private readonly codec: Codec,
    private readonly clock: Clock,
    private readonly background: BackgroundWork,
  ) {}

  /** Backfills `found`, read from tier `from` by a read that took mutation mark `mark`. */
  run(from: number, found: readonly Found[], mark: number): void {
    if (this.mutations.startedOverSince(mark)) return;
    const now = this.clock.now();
    const source = this.slots[from];
    for (let t = 0; t < from; t++) {
      const slot = this.slots[t];
      let writes: TierWrite<unknown>[] | undefined;
      let copied = 0;
      for (const { key, k, record, payload } of found) {
        if (this.mutations.changedSince(k, mark)) continue;
        const remaining = record.expiresAt === 0 ? 0 : record.expiresAt - now;
        if (record.expiresAt !== 0 && remaining <= 0) continue;
        const bytes =
          source.mode === 'encoded' ? (payload as Buffer).length : (payload as LocalRecord).size;
        if (bytes > slot.maxValueBytes) {
          // More than this tier stores: served from the far tier, never copied nearer.
          slot.counters.skipped++;
          continue;
        }
        const ttlMs = slot.ttlFor(remaining);
        copied++;
        const tier = slot.tier;
        if (isLocalTier(tier)) {
          // The local tier, filled from a farther tier, which holds bytes: written at once.
          const meta = metaOf(record);
          const { value, expiresAt, key: hashed, tagged } = record;
          let r: LocalRecord;
          try {
            r = recordFor(slot.mode, value, payload as Buffer, expiresAt, meta, hashed, tagged);
          } catch (err) {
            // A value this version would not store (e.g. nested too deep), written elsewhere:
            // served from the far tier as it is, never copied nearer.
            slot.fail('backfill', key, err, false);
            continue;
          }
          tier.put(slot.keyFor(key, k), r, ttlMs);
          continue;
        }
        const p =
          source.mode === 'encoded'
            ? payload
            : this.codec.encode(
                record.value,
                record.expiresAt,
                metaOf(record),
                (payload as LocalRecord).key,
                (payload as LocalRecord).tagged,
              );
        (writes ??= []).push({ key: k, value: p, ttlMs });
      }
      if (copied > 0) slot.backfilled(copied);
      if (writes === undefined) continue;
      const batch = writes;
      const tier = slot.tier;
      this.background.track(
        slot.backfill(
          batch.map((w) => w.key),
          // `add`: a delete's tombstone, or a newer write, that landed first wins.
          slot.tombstones
            ? () => Promise.all(batch.map((w) => tier.add!(w.key, w.value, w.ttlMs)))
            : async () =>
                batch.length === 1
                  ? tier.set(batch[0].key, batch[0].value, batch[0].ttlMs)
                  : tier.setMany(batch),
        ),
      );
    }
  }
}
