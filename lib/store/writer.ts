import { TieredCacheError, ValueTooLargeError, quoteKey } from '../errors';
import { milliseconds, onlyKnownKeys } from '../options';
import type { EntryMeta, Tagged } from '../serialization/codec';
import { Outgoing } from './local-records';
import type { SetEntryOptions, SetManyEntry, SetOptions } from './stored-entry';
import { tagList } from './tag-times';
import type { StoreParts } from './store-parts';
import { FAILED } from './tier-slot';
import { ValueLimits } from './value-limits';

/**
 * Writes, deletes and counters: each reaches every tier concurrently (a value is encoded once
 * and shaped per tier), with each tier's capped TTL, and is recorded in the mutation log first.
 * A write resolves once every tier has answered (a read-through write: once the tiers up to the
 * lease tier have, see {@link setEntry}); it fails only when no tier accepted it, or when no
 * shared tier can hold the value (`ValueTooLargeError`).
 */
export class Writer {
  private readonly limits: ValueLimits;

  constructor(private readonly parts: StoreParts) {
    this.limits = new ValueLimits(parts.slots);
  }

  /**
   * Stores `value` under `key` in every tier. `ttl` in ms (default: the store's `ttl`; `0` = no
   * expiry), capped per tier. Throws a `TypeError` (and writes nothing) when the value cannot be
   * serialized; resolves true when at least one tier accepted the write. A tier whose
   * `maxValueBytes` the encoded value exceeds (or that refuses it for its size) is skipped and
   * its copy of the key deleted; when that is every shared tier, the key is deleted everywhere,
   * the local tier included, and it rejects with a `ValueTooLargeError` (`E_TOO_LARGE`).
   */
  async set(key: string, value: unknown, options?: number | SetOptions): Promise<boolean> {
    const k = this.parts.keys.build(key);
    const { ttl, tags } = setOptions(options);
    const ttlMs = ttlOption('ttl', ttl, this.parts.defaultTtl);
    const tagged = this.tagged(tagList('tags', tags), undefined);
    const outgoing = this.prepare(key, k, value, ttlMs, undefined, tagged);
    try {
      return await this.writeEverywhere('set', key, k, outgoing, ttlMs, false);
    } finally {
      this.parts.coherence.changedKey(key);
    }
  }

  /**
   * Stores a read-through entry: `value` is fresh for `ttl`, then stale (readable through
   * {@link getEntry} only) for `grace` more ms; every tier gets `ttl + grace`, capped. With
   * `unchangedSince`, a write or delete of the key made through this store since that mark wins
   * and nothing is written. Resolves whether it wrote, once the tiers up to the lease tier (the
   * one other processes poll; without one, the nearest shared tier) have answered and one of
   * them accepted it; farther tiers' writes go on in the background, in write order (a later
   * delete still wins there), their failures reported. A value no shared tier holds is not
   * stored: it resolves false and emits an `error` event (a `TierError` whose cause is the
   * `ValueTooLargeError`).
   * @internal
   */
  async setEntry(key: string, value: unknown, options: SetEntryOptions = {}): Promise<boolean> {
    const k = this.parts.keys.build(key);
    const ttlMs = ttlOption('ttl', options.ttl, this.parts.defaultTtl);
    const grace = ttlOption('grace', options.grace, 0);
    const now = this.parts.clock.now();
    const meta: EntryMeta = { staleAt: ttlMs > 0 ? now + ttlMs : 0, delta: options.delta ?? 0 };
    const physical = ttlMs > 0 ? ttlMs + grace : 0;
    const tagged = this.tagged(tagList('tags', options.tags), options.taggedAt);
    const mark = options.unchangedSince;
    if (mark !== undefined && this.parts.mutations.changedSince(k, mark)) return false;
    const outgoing = this.prepare(key, k, value, physical, meta, tagged);
    try {
      return await this.writeEverywhere('setEntry', key, k, outgoing, physical, true);
    } catch (err) {
      if (!(err instanceof ValueTooLargeError)) throw err;
      this.reportTooLarge('setEntry', key, err);
      return false;
    } finally {
      this.parts.coherence.changedKey(key);
    }
  }

  /**
   * One encoded value into every tier, concurrently, each with its capped TTL; with `early`,
   * resolving once the tiers up to `writeBound` have answered (see {@link setEntry}).
   */
  private async writeEverywhere(
    op: string,
    key: string,
    k: string,
    outgoing: Outgoing,
    ttlMs: number,
    early: boolean,
  ): Promise<boolean> {
    const { slots, mutations } = this.parts;
    const bytes = outgoing.encoded.length;
    mutations.mutated(k);
    if (this.limits.noneHolds(bytes)) {
      await this.removeEverywhere(op, key, [[key, k]]);
      throw this.limits.error(op, key, bytes);
    }
    const mark = mutations.mark();
    const writes = slots.map((slot) => {
      const at = slot.keyFor(key, k);
      const w = { at, bytes, value: outgoing.payloadFor(slot.mode), ttlMs: slot.ttlFor(ttlMs) };
      return slot.writeValues(op, key, [w]).then((o) => o[0]);
    });
    const all = Promise.all(writes).then(async (outcomes) => {
      if (this.limits.refusedEverywhere(slots, outcomes)) {
        await this.removeLocal(op, [[key, k]], mark);
        throw this.limits.error(op, key, bytes);
      }
      return this.accepted(
        outcomes.map((o) => o === 'stored'),
        op,
        key,
      );
    });
    const bound = this.parts.writeBound;
    if (!early || bound >= slots.length - 1) return all;
    const near = await Promise.all(writes.slice(0, bound + 1));
    if (!near.includes('stored')) return all;
    this.parts.background.track(
      all.catch((err: unknown) => {
        if (err instanceof ValueTooLargeError) this.reportTooLarge(op, key, err);
        else this.parts.report('store', op, key, err);
      }),
    );
    return true;
  }

  /**
   * {@link set} of several entries, batched per tier. Entries no shared tier can hold are deleted
   * from every tier instead, and once the others are written it rejects with a
   * `ValueTooLargeError` naming them.
   */
  async setMany(entries: SetManyEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const prepared = entries.map((e, i): Prepared => {
      const ttlMs = ttlOption('ttl', e.ttl, this.parts.defaultTtl);
      const k = this.parts.keys.build(e.key);
      const tagged = this.tagged(tagList(`entries[${i}].tags`, e.tags), undefined);
      const outgoing = this.prepare(e.key, k, e.value, ttlMs, undefined, tagged);
      return { key: e.key, k, ttlMs, outgoing, bytes: outgoing.encoded.length };
    });
    const { mutations } = this.parts;
    for (const p of prepared) mutations.mutated(p.k);
    try {
      await this.writeMany(prepared, mutations.mark());
    } finally {
      this.parts.coherence.changed(prepared.map((p) => p.key));
    }
  }

  private async writeMany(prepared: Prepared[], mark: number): Promise<void> {
    const { slots } = this.parts;
    const unstorable = prepared.filter((p) => this.limits.noneHolds(p.bytes));
    const storable = prepared.filter((p) => !this.limits.noneHolds(p.bytes));
    const [, outcomes] = await Promise.all([
      unstorable.length > 0
        ? this.removeEverywhere(
            'setMany',
            undefined,
            unstorable.map((p) => [p.key, p.k]),
          )
        : undefined,
      storable.length === 0
        ? []
        : Promise.all(
            slots.map((slot) =>
              slot.writeValues(
                'setMany',
                undefined,
                storable.map((p) => ({
                  at: slot.keyFor(p.key, p.k),
                  bytes: p.bytes,
                  value: p.outgoing.payloadFor(slot.mode),
                  ttlMs: slot.ttlFor(p.ttlMs),
                })),
              ),
            ),
          ),
    ]);
    // Values every shared tier refused at run time: not kept locally either.
    const refused = storable.filter((_, i) =>
      this.limits.refusedEverywhere(
        slots,
        outcomes.map((o) => o[i]),
      ),
    );
    if (refused.length > 0)
      await this.removeLocal(
        'setMany',
        refused.map((p) => [p.key, p.k]),
        mark,
      );
    const tooLarge = [...unstorable, ...refused];
    if (tooLarge.length > 0)
      throw this.limits.manyError(tooLarge.map((p) => [String(p.key), p.bytes]));
    this.accepted(
      outcomes.map((o) => o.includes('stored')),
      'setMany',
      undefined,
    );
  }

  /** Deletes `[key, final key]`s too large to share from every tier (skips, for shared ones). */
  private async removeEverywhere(
    op: string,
    key: string | undefined,
    keys: Array<[string, string]>,
  ): Promise<void> {
    await Promise.all(
      this.parts.slots.map((slot) => {
        const at = keys.map(([caller, k]) => slot.keyFor(caller, k));
        if (!slot.local) slot.counters.skipped += at.length;
        return slot.remove(op, key, at);
      }),
    );
  }

  /** Deletes `[key, final key]`s from the local tier, unless mutated again since `mark`. */
  private async removeLocal(op: string, keys: Array<[string, string]>, mark: number) {
    const { slots, mutations } = this.parts;
    const local = slots.find((s) => s.local);
    if (local === undefined) return;
    const at = keys
      .filter(([, k]) => !mutations.changedSince(k, mark))
      .map(([key, k]) => local.keyFor(key, k));
    if (at.length > 0) await local.call(op, undefined, () => local.tier.deleteMany(at));
  }

  /** Reports a value no shared tier holds, on the shared tier that could hold the most. */
  private reportTooLarge(op: string, key: string, err: ValueTooLargeError): void {
    const shared = this.parts.slots.filter((s) => !s.local);
    const tier = shared.reduce((a, b) => (b.maxValueBytes >= a.maxValueBytes ? b : a));
    this.parts.report(tier.name, op, key, err);
  }

  /**
   * Deletes `keys` from every tier, and their read-through leases. Resolves true when a key held
   * something and every reachable tier confirmed the delete.
   */
  async deleteKeys(keys: string[], op: 'delete' | 'deleteMany'): Promise<boolean> {
    const finals = keys.map((key) => this.parts.keys.build(key));
    for (const k of finals) this.parts.mutations.mutated(k);
    const one = keys.length === 1 ? keys[0] : undefined;
    const outcomes = await Promise.all([
      this.invalidateLeases(keys),
      ...this.parts.slots.map((slot) => {
        const at = keys.map((key, i) => slot.keyFor(key, finals[i]));
        return slot.remove(op, one, at);
      }),
    ]);
    const results = outcomes.slice(1);
    this.parts.coherence.changed(keys);
    this.accepted(
      results.map((r) => r !== FAILED),
      op,
      one,
    );
    return results.some((r) => r === true) && results.every((r) => r !== FAILED);
  }

  /** Deletes the read-through leases of `keys`, so that refreshes in flight do not write back. */
  private async invalidateLeases(keys: string[]): Promise<void> {
    const slot = this.parts.lease;
    if (slot === undefined) return;
    const leaseKeys = keys.map((key) => this.parts.keys.leaseKey(key));
    await slot.call('lease invalidate', keys.length === 1 ? keys[0] : undefined, () =>
      leaseKeys.length === 1 ? slot.tier.delete(leaseKeys[0]) : slot.tier.deleteMany(leaseKeys),
    );
  }

  /**
   * Adds `by` to the counter at `key` and returns the new value. The counter tier is
   * authoritative (see the store's `counters` option: what the value resolved means depends on
   * it); nearer tiers get a copy. Memcached and the memory tier floor counters at 0. Never
   * retried in a way that could count twice: when the counter tier fails, the error reaches the
   * caller.
   */
  async increment(key: string, by = 1, ttl?: number): Promise<number> {
    if (typeof ttl === 'object' && ttl !== null && 'tags' in ttl)
      throw new TypeError(
        `increment${quoteKey(key)}: counters cannot be tagged (invalidateTags would have to drop a count); delete the counter instead`,
      );
    if (!Number.isSafeInteger(by))
      throw new TypeError(`increment: by must be a safe integer, got ${String(by)}`);
    const k = this.parts.keys.build(key);
    const ttlMs = ttlOption('ttl', ttl, this.parts.defaultTtl);
    const authority =
      this.parts.counter ?? this.parts.slots.find((s) => s.tier.increment !== undefined);
    if (authority === undefined)
      throw new TieredCacheError('E_TIER_FAILED', 'increment: no tier of this store can count');
    this.parts.mutations.mutated(k);
    const mark = this.parts.mutations.mark();
    // Counters go around the circuit breaker: a skipped increment would be a lost count.
    const at = authority.keyFor(key, k);
    const value = await authority.attemptInOrder('increment', key, at, () =>
      authority.tier.increment!(at, by, authority.ttlFor(ttlMs)),
    );
    this.parts.coherence.changedKey(key);
    // A newer write, delete or increment of the key, or a new generation, wins over this copy.
    if (this.parts.mutations.changedSince(k, mark)) return value;
    // Copies for the nearer tiers (a counter copy is the plain decimal, readable by `get`).
    const copy = new Outgoing(value, 0, Buffer.from(String(value), 'latin1'));
    await Promise.all(
      this.parts.slots.slice(0, this.parts.slots.indexOf(authority)).map((slot) => {
        const at = slot.keyFor(key, k);
        return slot.write('increment copy', key, [at], () =>
          slot.tier.set(at, copy.payloadFor(slot.mode), slot.ttlFor(ttlMs)),
        );
      }),
    );
    return value;
  }

  /**
   * Encodes the value of `key` (final key `k`) once for every tier; an entry under a hashed final
   * key keeps the key that was hashed, so that iteration can name it.
   */
  private prepare(
    key: string,
    k: string,
    value: unknown,
    ttlMs: number,
    meta?: EntryMeta,
    tagged?: Tagged,
  ): Outgoing {
    const expiresAt = ttlMs > 0 ? this.parts.clock.now() + ttlMs : 0;
    const hashed = this.parts.keys.hashedFrom(key, k);
    const encoded = this.parts.codec.encode(value, expiresAt, meta, hashed, tagged);
    return new Outgoing(value, expiresAt, encoded, meta, hashed, tagged);
  }

  /** An entry's tags, stamped with when it was written (`at`, default now); none: `undefined`. */
  private tagged(tags: readonly string[] | undefined, at: number | undefined): Tagged | undefined {
    const times = this.parts.tags;
    return tags === undefined ? undefined : { tags, at: at ?? times.stamp(), by: times.origin };
  }

  private accepted(results: boolean[], op: string, key: string | undefined): boolean {
    if (results.some(Boolean)) return true;
    throw new TieredCacheError(
      'E_NOT_ACCEPTED',
      `${op}${quoteKey(key)}: no tier accepted the write (${this.parts.slots
        .map((s) => `${s.name}: ${s.breaker.state === 'closed' ? 'failed' : 'circuit open'}`)
        .join(', ')})`,
    );
  }
}

/** One entry of `setMany`, encoded. */
interface Prepared {
  key: string;
  k: string;
  ttlMs: number;
  outgoing: Outgoing;
  bytes: number;
}

const SET_OPTIONS = ['ttl', 'tags'];

/** `set`'s third argument: a TTL, or options (unknown keys refused). */
function setOptions(options: number | SetOptions | undefined): SetOptions {
  if (typeof options !== 'object' || options === null) return { ttl: options };
  onlyKnownKeys('set options', options, SET_OPTIONS);
  return options;
}

/** A TTL option in ms (`>= 0`, rounded up), or `fallback` when absent. */
export function ttlOption(path: string, ttl: unknown, fallback: number): number {
  return Math.ceil(milliseconds(path, ttl, fallback, ' (0 = no expiry)'));
}
