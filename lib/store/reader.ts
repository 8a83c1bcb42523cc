import type { CacheRecord, Tagged } from '../serialization/codec';
import type { LocalRecord, LocalTier } from '../tiers/tier.interface';
import type { Found } from './backfill';
import { readRecord } from './local-records';
import { isStale } from './stored-entry';
import { afterTags, FRESH, UNKNOWN } from './tag-times';
import { isTombstone } from './tombstone';
import type { StoreParts } from './store-parts';
import { FAILED, type TierSlot } from './tier-slot';

/**
 * Reads through the tiers nearest first (the store's own fast path, a hit in the nearest local
 * tier, comes before this): decodes what each tier holds, counts hits and misses, skips failed
 * tiers, and backfills nearer tiers after a far hit.
 */
export class Reader {
  constructor(private readonly parts: StoreParts) {}

  /** First live record from tier `from` on; stale ones count only when `graced`. */
  async readTiers(
    key: string,
    k: string,
    now: number,
    from: number,
    graced: boolean,
    to = this.parts.slots.length,
  ): Promise<CacheRecord | undefined> {
    this.parts.generation.checkDue(now);
    const mark = this.parts.mutations.mark();
    for (let i = from; i < to; i++) {
      const slot = this.parts.slots[i];
      const at = slot.keyFor(key, k);
      // A tier that missed the key's last write or delete may hold an older value.
      if (slot.missedWrite(at)) continue;
      const payload = await slot.call('get', key, () => slot.tier.get(at));
      if (payload === FAILED) continue;
      const found =
        payload === undefined || isTombstone(payload)
          ? undefined
          : this.decode(slot, payload, key, now);
      const record = found?.tagged === undefined ? found : await this.checkTags(found, now);
      if (record === undefined || (!graced && isStale(record, now))) {
        slot.miss();
        continue;
      }
      slot.hit();
      if (i > 0 && record === found)
        this.parts.backfill.run(i, [{ key, k, record, payload }], mark);
      return record;
    }
    return undefined;
  }

  /** The live record of `key`, nearest tier first (the local tier's hit path included). */
  async record(key: string): Promise<CacheRecord | undefined> {
    const k = this.parts.keys.build(key);
    const now = this.parts.clock.now();
    const slots = this.parts.slots;
    const near = slots[0];
    if (near.local) {
      const payload = (near.tier as LocalTier).peek(near.keyFor(key, k));
      const found = payload && this.decode(near, payload, key, now);
      const record = found?.tagged === undefined ? found : await this.checkTags(found, now);
      if (record !== undefined && !isStale(record, now)) {
        near.hit();
        return record;
      }
      near.miss();
      if (slots.length === 1) return undefined;
    }
    return this.readTiers(key, k, now, near.local ? 1 : 0, false);
  }

  /**
   * `key`'s record for read-through, stale ones included (see `TieredStore.getEntry`): from the
   * tier `lease` on with `scope` `'shared'`, from it alone with `'lease'`, all tiers otherwise.
   */
  scoped(
    key: string,
    scope: 'all' | 'shared' | 'lease',
    leaseIndex: number,
  ): Promise<CacheRecord | undefined> {
    const k = this.parts.keys.build(key);
    const lease = scope === 'all' ? -1 : leaseIndex;
    const from = Math.max(lease, 0);
    const to = scope === 'lease' && lease >= 0 ? lease + 1 : this.parts.slots.length;
    return this.readTiers(key, k, this.parts.clock.now(), from, true, to);
  }

  /** Live records of `keys`, in order (`undefined` for misses), batched per tier. */
  async getMany(keys: string[]): Promise<Array<CacheRecord | undefined>> {
    const finals = keys.map((key) => this.parts.keys.build(key));
    const now = this.parts.clock.now();
    this.parts.generation.checkDue(now);
    const mark = this.parts.mutations.mark();
    const out: Array<CacheRecord | undefined> = new Array(keys.length).fill(undefined);
    // Keys still missing, deduplicated by final key, with the positions that asked for each.
    const positions = new Map<string, { key: string; at: number[] }>();
    finals.forEach((k, i) => {
      const seen = positions.get(k);
      if (seen === undefined) positions.set(k, { key: String(keys[i]), at: [i] });
      else seen.at.push(i);
    });
    let missing = [...positions.keys()];
    for (let t = 0; t < this.parts.slots.length && missing.length > 0; t++) {
      const slot = this.parts.slots[t];
      const asked = slot.byCallerKey ? missing.map((k) => positions.get(k)!.key) : missing;
      const payloads = await slot.call('getMany', undefined, () => slot.tier.getMany(asked));
      if (payloads === FAILED) continue;
      const stillMissing: string[] = [];
      const found: Found[] = [];
      // See `readTiers`: a tier that missed the key's last write or delete is not trusted for it.
      const decoded = missing.map((k, j) => {
        const payload = payloads[j];
        return slot.missedWrite(asked[j]) || payload === undefined || isTombstone(payload)
          ? undefined
          : this.decode(slot, payload, positions.get(k)!.key, now);
      });
      const tags = this.parts.tags;
      const unknown = decoded.flatMap((r) =>
        r?.tagged !== undefined && tags.judge(r.tagged, now) === UNKNOWN ? r.tagged.tags : [],
      );
      if (unknown.length > 0) await tags.load(unknown);
      missing.forEach((k, j) => {
        const payload = payloads[j];
        const { key, at } = positions.get(k)!;
        const d = decoded[j];
        const record = d?.tagged === undefined ? d : afterTags(d, this.judge(d.tagged, now), now);
        if (record === undefined || isStale(record, now)) {
          slot.miss();
          stillMissing.push(k);
          return;
        }
        slot.hit();
        found.push({ key, k, record, payload });
        out[at[0]] = record;
        // A key asked for twice: each position gets its own copy unless the tier shares objects.
        for (let p = 1; p < at.length; p++)
          out[at[p]] = slot.mode === 'shared' ? record : this.decode(slot, payload, key, now);
      });
      if (t > 0 && found.length > 0) this.parts.backfill.run(t, found, mark);
      missing = stillMissing;
    }
    return out;
  }

  /**
   * `record` (a tagged one) as its tags' invalidations leave it: itself, a stale view (see
   * `afterTags`), or `undefined`; loads the tags' times first when they are not known here.
   */
  async checkTags(record: CacheRecord, now: number): Promise<CacheRecord | undefined> {
    const tagged = record.tagged!;
    let verdict = this.parts.tags.judge(tagged, now);
    if (verdict === UNKNOWN) {
      await this.parts.tags.load(tagged.tags);
      verdict = this.judge(tagged, now);
    }
    return afterTags(record, verdict, now);
  }

  /** {@link checkTags} without loading: `undefined` also when the times are not known here. */
  knownTags(record: CacheRecord, now: number): CacheRecord | undefined {
    const verdict = this.parts.tags.judge(record.tagged!, now);
    return verdict === UNKNOWN ? undefined : afterTags(record, verdict, now);
  }

  /** {@link TagTimes.judge} once the times are loaded: what is still unknown was never seen. */
  private judge(tagged: Tagged, now: number): number {
    const verdict = this.parts.tags.judge(tagged, now);
    return verdict === UNKNOWN ? FRESH : verdict;
  }

  decode(slot: TierSlot, payload: unknown, key: string, now: number): CacheRecord | undefined {
    if (slot.mode !== 'encoded') {
      const r = payload as LocalRecord;
      if (r.expiresAt !== 0 && r.expiresAt <= now) return undefined;
      if (slot.mode === 'shared') return r;
      return {
        value: this.readLocal(slot, r, key),
        expiresAt: r.expiresAt,
        staleAt: r.staleAt,
        delta: r.delta,
        tagged: r.tagged,
      };
    }
    let record: CacheRecord;
    try {
      record = this.parts.codec.decode(payload as Buffer);
    } catch (err) {
      slot.fail('decode', key, err, false);
      return undefined;
    }
    return record.expiresAt !== 0 && record.expiresAt <= now ? undefined : record;
  }

  /** What a reader of a local record gets (see `readRecord`); bytes that fail are a miss. */
  readLocal(slot: TierSlot, record: LocalRecord, key: string): unknown {
    try {
      return readRecord(record, this.parts.codec);
    } catch (err) {
      // Bytes that decoded once when they were stored: only a fault in memory gets here.
      slot.fail('decode', key, err, false);
      return undefined;
    }
  }
}
