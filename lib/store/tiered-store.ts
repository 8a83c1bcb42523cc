import { isCachedError, plainValue } from './cached-error';
import { EventEmitter } from 'node:events';
import type { Clock } from '../clock';
import { InvalidOptionError } from '../errors';
import { onlyKnownKeys } from '../options';
import type { KeyBuilder } from '../keys/key-builder';
import type { CacheRecord } from '../serialization/codec';
import type { LocalRecord, LocalTier } from '../tiers/tier.interface';
import type { BackgroundWork } from './background';
import type { CacheEvents } from './cache-events';
import type { Coherence } from './coherence';
import type { Generation } from './generation';
import { Iteration } from './iteration';
import { isFresh } from './local-records';
import type { MutationLog } from './mutation-log';
import { Reader } from './reader';
import {
  toEntry,
  type LeaseOutcome,
  type SetEntryOptions,
  type SetManyEntry,
  type SetOptions,
  type StoredEntry,
} from './stored-entry';
import { FAILED, type TierSlot } from './tier-slot';
import { assembleParts } from './store-parts';
import { UNKNOWN, type InvalidateTagsOptions, type TagTimes } from './tag-times';
import type { TierStats } from './tier-stats';
import type { BusStats } from '../bus/invalidation-bus';
import { TIERED_STORE_OPTIONS, type TieredStoreOptions } from './tiered-store.options';
import { Writer } from './writer';

/**
 * The tier chain: one store over tiers it does not know, nearest first (see the README's "Tier
 * engine"). Give it to Keyv and cache-manager through `createTieredKeyv(store)`.
 *
 * - Reads go nearest-first; a hit at tier k backfills tiers 0..k-1 with the remaining TTL,
 *   capped per tier, without delaying the caller.
 * - Writes and deletes reach every tier concurrently. A failing tier is a miss for reads and
 *   never fails a write another tier accepted; it emits `error` and is counted, and a circuit
 *   breaker skips it after consecutive failures.
 * - `clear()` bumps this namespace's generation instead of flushing shared servers.
 * - With a `bus`, other instances' writes and deletes reach this one's local tiers (`bus` events).
 * - Roles come from each tier's capabilities: the local tier (at most one) is the fast path, the
 *   farthest shared tier that counts holds the generation (and counters, see `counters`), the
 *   farthest tier with the cheapest leases holds read-through leases.
 */
export class TieredStore extends EventEmitter {
  /** Options as given. */
  readonly opts: TieredStoreOptions;
  /**
   * Typed events: hits and misses per tier, timed tier calls, backfills, circuit changes, tier
   * errors, read-through's origin calls, stale serves and leases, and the bus (see
   * `CacheEventMap`). A listener that throws is reported once, as a `listener-error` event.
   */
  readonly events: CacheEvents;

  /** The nearest tier when it is local: the synchronous fast path. */
  private readonly near: LocalTier | undefined;
  /** Whether that tier is also keyed by caller keys (see `TierSlot.byCallerKey`): the fastest path. */
  private readonly nearByCallerKey: boolean;
  private readonly slots: readonly TierSlot[];
  private readonly keys: KeyBuilder;
  private readonly clock: Clock;
  private readonly mutations: MutationLog;
  private readonly background: BackgroundWork;
  private readonly tags: TagTimes;
  private readonly gen: Generation;
  private readonly reader: Reader;
  private readonly writer: Writer;
  private readonly iteration: Iteration;
  private readonly coherence: Coherence;
  /** The tier holding read-through leases (and its index, -1 for none). */
  private readonly lease: TierSlot | undefined;
  private readonly leaseIndex: number;
  /** The TTL of entries written without one, ms (`0`: no expiry). @internal */
  readonly defaultTtl: number;
  private connecting: Promise<void> | undefined;
  private closed = false;

  /** @param alsoKnown keys a caller (the Nest module) passes with the options; others fail. */
  constructor(options: TieredStoreOptions = {}, alsoKnown: readonly string[] = []) {
    super();
    onlyKnownKeys('', options, [...TIERED_STORE_OPTIONS, ...alsoKnown]);
    this.opts = options;
    const parts = assembleParts(options, this);
    this.events = parts.events;
    const { chain } = parts;
    this.slots = parts.slots;
    this.near = chain.near;
    this.nearByCallerKey = this.near !== undefined && parts.slots[0].byCallerKey;
    this.lease = parts.lease;
    this.leaseIndex = chain.leaseIndex;
    this.keys = parts.keys;
    this.clock = parts.clock;
    this.defaultTtl = parts.defaultTtl;
    this.mutations = parts.mutations;
    this.background = parts.background;
    this.gen = parts.generation;
    this.coherence = parts.coherence;
    this.tags = parts.tags;
    this.reader = new Reader(parts);
    this.writer = new Writer(parts);
    this.iteration = new Iteration(parts, this.reader);
  }

  /** This namespace's current generation (bumped by `clear()`). */
  get generation(): number {
    return this.gen.current;
  }

  /**
   * Connects every tier and the bus, and reads the namespace generation. A tier that cannot
   * connect is reported (`error` event), counted and skipped by its circuit breaker; it never
   * rejects unless `failFast` is set, then the first failure rejects. A bus whose broker cannot be
   * reached yet is retried in the background (see the `bus` events).
   */
  connect(options: { failFast?: boolean } = {}): Promise<void> {
    this.connecting ??= this.doConnect(options.failFast ?? false);
    return this.connecting;
  }

  private async doConnect(failFast: boolean): Promise<void> {
    const bus = this.coherence.start();
    await Promise.all(
      this.slots.map(async (slot) => {
        try {
          await slot.ensureConnected();
          slot.breaker.success();
        } catch (err) {
          if (failFast) throw err;
          slot.fail('connect', undefined, err);
        }
      }),
    );
    // A tier that just failed to connect is not asked again right away.
    if (this.gen.reachable) await this.gen.refresh();
    await bus;
  }

  // ---------------------------------------------------------------- reads

  /**
   * Reads `key`: nearest tier first, backfilling nearer tiers after a far hit. A tier that fails
   * is a miss there (plus an `error` event); only an unusable key rejects.
   */
  get<T>(key: string): Promise<T | undefined> {
    // Deliberately not `async`: a local hit, the hottest path, costs one resolved promise.
    const near = this.near;
    // A tagged entry whose tags' times are not known here yet is read again once they are.
    let from = near ? 1 : 0;
    if (this.nearByCallerKey && typeof key === 'string') {
      const record = near!.peek(key);
      if (record !== undefined && isFresh(record, this.clock)) {
        const verdict = record.tagged && this.tags.judge(record.tagged, this.clock.now());
        if (!verdict) return this.nearHit<T>(record, key);
        if (verdict === UNKNOWN) from = 0;
      }
    }
    let k: string;
    try {
      k = this.keys.build(key);
    } catch (err) {
      return Promise.reject(err);
    }
    if (near !== undefined && from === 1) {
      if (!this.nearByCallerKey || typeof key !== 'string') {
        const record = near.peek(this.slots[0].keyFor(key, k));
        if (record !== undefined && isFresh(record, this.clock)) {
          const verdict = record.tagged && this.tags.judge(record.tagged, this.clock.now());
          if (!verdict) return this.nearHit<T>(record, key);
          if (verdict === UNKNOWN) from = 0;
        }
      }
      if (from === 1) {
        this.slots[0].miss();
        if (this.slots.length === 1) return Promise.resolve(undefined);
      }
    }
    return this.reader.readTiers(key, k, this.clock.now(), from, false).then(valueOf) as Promise<
      T | undefined
    >;
  }

  /**
   * A hit in the nearest tier, a local one. Its entries live at most the tier's TTL cap (the
   * staleness bound between instances), so a hit needs no generation check.
   */
  private nearHit<T>(record: LocalRecord, key: string): Promise<T> {
    const slot = this.slots[0];
    slot.hit();
    return Promise.resolve(plainValue(this.reader.readLocal(slot, record, key)) as T);
  }

  /**
   * Reads `key` for read-through (`getOrSet`): like {@link get}, but a value past its logical
   * expiry is still returned, with its metadata, until its grace period ends.
   *
   * `scope` narrows the tiers read: `'shared'` starts at the tier that holds leases, skipping
   * nearer ones, so a fresh value written by another process is seen even while a nearer tier
   * still holds a stale copy; `'lease'` reads that tier alone (one round trip: every
   * read-through write reaches it). Both read every tier when no tier holds leases.
   * @internal
   */
  async getEntry<T>(
    key: string,
    options: { scope?: 'all' | 'shared' | 'lease' } = {},
  ): Promise<StoredEntry<T> | undefined> {
    const record = await this.reader.scoped(key, options.scope ?? 'all', this.leaseIndex);
    return record && toEntry<T>(record);
  }

  /**
   * The entry of `key` in the nearest tier when it is local, synchronously (stale ones
   * included): read-through's fast path (`@Cached` hits). `undefined` on a miss there or without
   * such a tier. Counts a hit only: the {@link getEntry} that follows a miss counts it.
   * @internal
   */
  peekEntry<T>(key: string): StoredEntry<T> | undefined {
    const near = this.near;
    if (near === undefined) return undefined;
    const slot = this.slots[0];
    const byCallerKey = this.nearByCallerKey && typeof key === 'string';
    const payload = near.peek(byCallerKey ? key : slot.keyFor(key, this.keys.build(key)));
    const now = this.clock.now();
    const found = payload && this.reader.decode(slot, payload, key, now);
    if (found === undefined) return undefined;
    // Tags whose times are not known here yet: the `getEntry` that follows loads them.
    const record = found.tagged === undefined ? found : this.reader.knownTags(found, now);
    if (record === undefined) return undefined;
    slot.hit();
    return toEntry<T>(record);
  }

  async getMany<T>(keys: string[]): Promise<Array<T | undefined>> {
    return (await this.reader.getMany(keys)).map(valueOf) as Array<T | undefined>;
  }

  /**
   * Reads `key` like {@link get}, with its expiry: the record's `expiresAt` (epoch ms, `0` =
   * never) and, for read-through entries, `staleAt`, when a plain read stops seeing it.
   */
  getRecord<T>(key: string): Promise<CacheRecord<T> | undefined> {
    return this.reader.record(key) as Promise<CacheRecord<T> | undefined>;
  }

  /** {@link getRecord} of several keys, in order, batched per tier like {@link getMany}. */
  getManyRecords<T>(keys: string[]): Promise<Array<CacheRecord<T> | undefined>> {
    return this.reader.getMany(keys) as Promise<Array<CacheRecord<T> | undefined>>;
  }

  async has(key: string): Promise<boolean> {
    return (await this.get(key)) !== undefined;
  }

  async hasMany(keys: string[]): Promise<boolean[]> {
    return (await this.getMany(keys)).map((v) => v !== undefined);
  }

  /**
   * Every live entry of this namespace, version and current generation, as `[key, value]`, read
   * from the farthest tier (it holds everything the chain stored), keys as they were given (with
   * a `keyFn`: as it transformed them). Rejects when that tier cannot list its keys (memcached).
   * On Cassandra it is a full table scan, page by page: for tools and maintenance, not hot paths.
   */
  async *iterate<T = unknown>(): AsyncGenerator<[key: string, value: T]> {
    for await (const [key, record] of this.iteration.records())
      if (!isCachedError(record.value)) yield [key, record.value as T];
  }

  /** {@link iterate} with each entry's record (value and expiry, as {@link getRecord} reads it). */
  iterateRecords<T = unknown>(): AsyncGenerator<[key: string, record: CacheRecord<T>]> {
    return this.iteration.records() as AsyncGenerator<[string, CacheRecord<T>]>;
  }

  // ---------------------------------------------------------------- writes

  /**
   * Stores `value` under `key` in every tier, `ttl` ms (default: the store's `ttl`; `0` = no
   * expiry), capped per tier; resolves true when a tier accepted it. See `Writer.set`: values
   * that cannot be serialized, or that no shared tier can hold, reject.
   */
  set(key: string, value: unknown, options?: number | SetOptions): Promise<boolean> {
    return this.writer.set(key, value, options);
  }

  setMany(entries: SetManyEntry[]): Promise<void> {
    return this.writer.setMany(entries);
  }

  /**
   * Invalidates every entry written with one of `tags` until now, in every tier and on every
   * instance: with `mode: 'delete'` (default) they are misses for every read; with `'expire'`
   * they are stale (read-through serves them within their grace period while one caller
   * refreshes). The time is stored on the counter authority (the farthest shared tier that
   * counts) and announced on the bus. Rejects (`E_TIER_FAILED`) when the authority cannot store
   * it: it then holds on this instance (and those the bus reached) only.
   */
  async invalidateTags(tags: string[], options: InvalidateTagsOptions = {}): Promise<void> {
    const list = this.tags.invalidate(tags, options);
    this.coherence.tagsInvalidated(list);
    await this.tags.persist(list);
  }

  /**
   * Stores a read-through entry: `value` is fresh for `ttl`, then stale (readable through
   * {@link getEntry} only) for `grace` more ms. See `SetEntryOptions`. Resolves whether it wrote,
   * without waiting for tiers beyond the lease tier (see `Writer.setEntry`).
   * @internal
   */
  setEntry(key: string, value: unknown, options: SetEntryOptions = {}): Promise<boolean> {
    return this.writer.setEntry(key, value, options);
  }

  /** A time for {@link SetEntryOptions.taggedAt}: now, after every earlier one. @internal */
  tagStamp(): number {
    return this.tags.stamp();
  }

  /** A mark for {@link SetEntryOptions.unchangedSince}. @internal */
  mutationMark(): number {
    return this.mutations.mark();
  }

  /**
   * Deletes `key` from every tier, and its read-through lease: a `getOrSet` refresh in flight
   * anywhere then does not write its value back. Resolves true when the key held something and
   * every reachable tier confirmed the delete; false for a key that held nothing.
   */
  delete(key: string): Promise<boolean> {
    return this.writer.deleteKeys([key], 'delete');
  }

  /** {@link delete} of several keys: true when any held something and every tier confirmed. */
  deleteMany(keys: string[]): Promise<boolean> {
    return this.writer.deleteKeys(keys, 'deleteMany');
  }

  // ---------------------------------------------------------------- leases (read-through)
  /** TTL resolution of the lease tier, ms (leases live at least this). @internal */
  get leaseTtlResolutionMs(): number {
    return this.lease?.tier.capabilities.ttlResolutionMs ?? 1;
  }

  /** The key of `key`'s read-through lease, for the three calls below. @internal */
  leaseKey(key: string): string {
    return this.keys.leaseKey(key);
  }

  /**
   * Takes the lease `leaseKey` for `ttlMs` on the lease tier (an atomic add). `token` names the
   * holder. Resolves `'local'` when no shared tier can hold it (none, or it failed: an `error`
   * event), so that read-through degrades to in-process protection instead of waiting on a lease
   * nobody holds.
   * @internal
   */
  async acquireLease(leaseKey: string, token: Buffer, ttlMs: number): Promise<LeaseOutcome> {
    const slot = this.lease;
    if (slot === undefined) return 'local';
    const added = await slot.call('lease', leaseKey, () => slot.tier.add!(leaseKey, token, ttlMs));
    if (added === FAILED) return 'local';
    return added ? 'acquired' : 'held';
  }

  /** The token holding `leaseKey`; `undefined` when none; `null` when it cannot be read. @internal */
  async leaseHolder(leaseKey: string): Promise<Buffer | undefined | null> {
    const slot = this.lease;
    if (slot === undefined) return null;
    const holder = await slot.call('lease', leaseKey, () => slot.tier.get(leaseKey));
    return holder === FAILED ? null : (holder as Buffer | undefined);
  }

  /** Releases `leaseKey` if `token` still holds it (a later holder's lease is kept). @internal */
  async releaseLease(leaseKey: string, token: Buffer): Promise<void> {
    const slot = this.lease;
    if (slot === undefined) return;
    await slot.call('lease release', leaseKey, () => slot.tier.deleteIf!(leaseKey, token));
  }

  // ---------------------------------------------------------------- generation and counters

  /**
   * Invalidates everything of this namespace and version, on every instance, without flushing
   * shared servers: bumps the generation held by the counter authority and empties the local
   * tier. Other instances pick the new generation up through the bus, else within
   * `generationRefreshMs`.
   */
  async clear(): Promise<void> {
    await this.gen.bump();
    this.coherence.cleared(this.gen.current);
  }

  /**
   * Re-reads this namespace's generation from the counter authority now (reads do this on their
   * own every `generationRefreshMs`). When it changed, the local tier is emptied.
   */
  refreshGeneration(): Promise<void> {
    return this.gen.refresh();
  }

  /** Adds `by` to the counter at `key`; resolves the new value (see `Writer.increment`). */
  increment(key: string, by = 1, ttl?: number): Promise<number> {
    return this.writer.increment(key, by, ttl);
  }

  decrement(key: string, by = 1, ttl?: number): Promise<number> {
    return this.increment(key, -by, ttl);
  }

  // ---------------------------------------------------------------- lifecycle & stats

  /** Per-tier counters, nearest tier first. */
  stats(): TierStats[] {
    return this.slots.map((s) => s.stats());
  }

  /** The invalidation bus's state and counters; `undefined` without a bus (or before it starts). */
  busStats(): BusStats | undefined {
    return this.coherence.stats();
  }

  /** Closes every tier's sockets, once the work started in the background has finished. */
  async disconnect(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.background.drain();
    await this.coherence.close();
    await Promise.all(
      this.slots.map((s) => s.tier.close().catch((err) => s.fail('close', undefined, err))),
    );
  }

  /** Keyv sets `namespace` on its store: a bare `TieredStore` would share nothing. @internal */
  set namespace(_namespace: string | undefined) {
    throw new InvalidOptionError(
      'store',
      'a TieredStore is not a Keyv store adapter by itself (Keyv would prefix its keys and wrap its values, so nothing would be shared with TieredCache): use createTieredKeyv(store)',
    );
  }
}

/** The value a record holds, `undefined` for none (or a cached error). */
function valueOf(record: CacheRecord | undefined): unknown {
  return plainValue(record?.value);
}

/** Creates a tier chain: `createTieredKeyv(createTieredStore(options))` for Keyv and cache-manager. */
export function createTieredStore(options: TieredStoreOptions = {}): TieredStore {
  return new TieredStore(options);
}
