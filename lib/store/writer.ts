import { TieredCacheError, quoteKey } from '../errors';
import { milliseconds } from '../options';
import type { EntryMeta } from '../serialization/codec';
import { Outgoing } from './local-records';
import type { SetEntryOptions } from './stored-entry';
import type { StoreParts } from './store-parts';
import { FAILED } from './tier-slot';

/**
 * Writes, deletes and counters: each reaches every tier concurrently (a value is encoded once
 * and shaped per tier), with each tier's capped TTL, and is recorded in the mutation log first.
 * A write resolves once every tier has answered; it fails only when no tier accepted it.
 */
export class Writer {
  constructor(private readonly parts: StoreParts) {}

  /**
   * Stores `value` under `key` in every tier. `ttl` in ms (default: the store's `ttl`; `0` = no
   * expiry), capped per tier. Throws a `TypeError` (and writes nothing) when the value cannot be
   * serialized; resolves true when at least one tier accepted the write.
   */
  async set(key: string, value: unknown, ttl?: number): Promise<boolean> {
    const k = this.parts.keys.build(key);
    const ttlMs = ttlOption('ttl', ttl, this.parts.defaultTtl);
    return this.writeEverywhere(key, k, this.prepare(key, k, value, ttlMs), ttlMs);
  }

  /**
   * Stores a read-through entry: `value` is fresh for `ttl`, then stale (readable through
   * {@link getEntry} only) for `grace` more ms; every tier gets `ttl + grace`, capped. With
   * `unchangedSince`, a write or delete of the key made through this store since that mark wins
   * and nothing is written. Resolves whether it wrote.
   * @internal
   */
  async setEntry(key: string, value: unknown, options: SetEntryOptions = {}): Promise<boolean> {
    const k = this.parts.keys.build(key);
    const ttlMs = ttlOption('ttl', options.ttl, this.parts.defaultTtl);
    const grace = ttlOption('grace', options.grace, 0);
    const now = this.parts.clock.now();
    const meta: EntryMeta = { staleAt: ttlMs > 0 ? now + ttlMs : 0, delta: options.delta ?? 0 };
    const physical = ttlMs > 0 ? ttlMs + grace : 0;
    const mark = options.unchangedSince;
    if (mark !== undefined && this.parts.mutations.changedSince(k, mark)) return false;
    return this.writeEverywhere(key, k, this.prepare(key, k, value, physical, meta), physical);
  }

  /** One encoded value into every tier, concurrently, each with its capped TTL. */
  private async writeEverywhere(
    key: string,
    k: string,
    outgoing: Outgoing,
    ttlMs: number,
  ): Promise<boolean> {
    this.parts.mutations.mutated(k);
    const results = await Promise.all(
      this.parts.slots.map((slot) => {
        const at = slot.keyFor(key, k);
        return slot.write('set', key, [at], () =>
          slot.tier.set(at, outgoing.payloadFor(slot.mode), slot.ttlFor(ttlMs)),
        );
      }),
    );
    return this.accepted(results, 'set', key);
  }

  async setMany(entries: Array<{ key: string; value: unknown; ttl?: number }>): Promise<void> {
    const prepared = entries.map((e) => {
      const ttlMs = ttlOption('ttl', e.ttl, this.parts.defaultTtl);
      const k = this.parts.keys.build(e.key);
      return { key: e.key, k, ttlMs, outgoing: this.prepare(e.key, k, e.value, ttlMs) };
    });
    for (const p of prepared) this.parts.mutations.mutated(p.k);
    const results = await Promise.all(
      this.parts.slots.map((slot) => {
        const writes = prepared.map((p) => ({
          key: slot.keyFor(p.key, p.k),
          value: p.outgoing.payloadFor(slot.mode),
          ttlMs: slot.ttlFor(p.ttlMs),
        }));
        return slot.write(
          'setMany',
          undefined,
          writes.map((w) => w.key),
          () => slot.tier.setMany(writes),
        );
      }),
    );
    this.accepted(results, 'setMany', undefined);
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
        return slot.callInOrder(op, one, at, () =>
          at.length === 1 ? slot.tier.delete(at[0]) : slot.tier.deleteMany(at),
        );
      }),
    ]);
    const results = outcomes.slice(1);
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
   * Adds `by` to the counter at `key` and returns the new value. The farthest shared tier that
   * counts is authoritative (Cassandra's counter table, else memcached incr); nearer tiers get a
   * copy. Memcached and the memory tier floor counters at 0. Never retried in a way that could
   * count twice: when the authoritative tier fails, the error reaches the caller.
   */
  async increment(key: string, by = 1, ttl?: number): Promise<number> {
    if (!Number.isSafeInteger(by))
      throw new TypeError(`increment: by must be a safe integer, got ${String(by)}`);
    const k = this.parts.keys.build(key);
    const ttlMs = ttlOption('ttl', ttl, this.parts.defaultTtl);
    const authority =
      this.parts.authority ?? this.parts.slots.find((s) => s.tier.increment !== undefined);
    if (authority === undefined)
      throw new TieredCacheError('E_TIER_FAILED', 'increment: no tier of this store can count');
    this.parts.mutations.mutated(k);
    const mark = this.parts.mutations.mark();
    // Counters go around the circuit breaker: a skipped increment would be a lost count.
    const at = authority.keyFor(key, k);
    const value = await authority.attemptInOrder('increment', key, at, () =>
      authority.tier.increment!(at, by, authority.ttlFor(ttlMs)),
    );
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
  ): Outgoing {
    const expiresAt = ttlMs > 0 ? this.parts.clock.now() + ttlMs : 0;
    const hashed = this.parts.keys.hashedFrom(key, k);
    const encoded = this.parts.codec.encode(value, expiresAt, meta, hashed);
    return new Outgoing(value, expiresAt, encoded, meta, hashed);
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

/** A TTL option in ms (`>= 0`, rounded up), or `fallback` when absent. */
export function ttlOption(path: string, ttl: unknown, fallback: number): number {
  return Math.ceil(milliseconds(path, ttl, fallback, ' (0 = no expiry)'));
}
