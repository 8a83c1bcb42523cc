import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { KeyvStoreAdapter } from 'keyv';
import { systemClock, type Clock } from '../clock';
import { KeyBuilder } from '../keys/key-builder';
import {
  Codec,
  hasJsonBody,
  ownCopy,
  type CacheRecord,
  type EntryMeta,
} from '../serialization/codec';
import { copyJsonTree, nestedKeys } from '../serialization/json-tree';
import { CassandraTier } from '../tiers/cassandra.tier';
import { MemcachedTier } from '../tiers/memcached.tier';
import { MEMORY_DEFAULTS, MemoryTier, type MemoryRecord } from '../tiers/memory.tier';
import type { Tier, TierKind, TierWrite } from '../tiers/tier.interface';
import type { TierOptions } from '../tiers/tier-options';
import { CircuitBreaker } from './circuit-breaker';
import { TierCounters, type TierStats } from './tier-stats';
import type { TieredStoreOptions } from './tiered-store.options';

/** Emitted as `error` (when someone listens) for every tier failure; never thrown at readers. */
export class TierError extends Error {
  override readonly name = 'TierError';
  constructor(
    readonly tier: string,
    readonly operation: string,
    readonly key: string | undefined,
    cause: unknown,
  ) {
    super(
      `${tier}: ${operation}${key === undefined ? '' : ` ${JSON.stringify(key)}`} failed: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { cause },
    );
  }
}

type Payload = Buffer | MemoryRecord;

/**
 * - `encoded`: the tier holds the codec's bytes (memcached, Cassandra);
 * - `copies`: memory records that hand every reader its own copy (the memory tier's default);
 * - `shared`: memory records that hand out the stored object itself (`serialize: false`).
 */
type PayloadMode = 'encoded' | 'copies' | 'shared';

/** A hit to backfill: the caller's key, the final key, the decoded record and what the tier held. */
interface Found {
  key: string;
  k: string;
  record: CacheRecord;
  payload: Payload;
}

/** One tier in the chain with the policy the store keeps for it. */
interface Slot {
  readonly tier: Tier<Payload>;
  readonly name: string;
  readonly kind: TierKind;
  /** TTL cap in ms, 0 = none. */
  readonly cap: number;
  /** What the tier holds: encoded bytes, or {@link MemoryRecord}s (see {@link PayloadMode}). */
  readonly mode: PayloadMode;
  /**
   * Keyed by the caller's key instead of the final one: the memory tier of a store without a
   * `keyFn`. A private map needs no namespace, and the store empties it whenever the generation
   * changes, so the caller's key names an entry exactly; a hit then skips building the key.
   */
  readonly local: boolean;
  readonly breaker: CircuitBreaker;
  readonly counters: TierCounters;
  /** False until `connect()` succeeded; a tier that failed to connect is connected again on use. */
  connected: boolean;
  connecting?: Promise<void>;
}

/** A value on its way into the tiers: encoded once, shaped per tier on demand. */
class Outgoing {
  constructor(
    readonly value: unknown,
    readonly expiresAt: number,
    readonly encoded: Buffer,
    readonly meta?: EntryMeta,
  ) {}

  payloadFor(slot: Slot): Payload {
    return slot.mode === 'encoded'
      ? this.encoded
      : memoryRecord(slot.mode, this.value, this.encoded, this.expiresAt, this.meta);
  }
}

/**
 * An entry as read-through sees it (see {@link TieredStore.getEntry}): the value with its logical
 * expiry (`staleAt`), its physical one (`expiresAt`, grace included) and its compute time.
 * Entries written by plain `set` have `staleAt === expiresAt` and `delta` 0.
 */
export interface StoredEntry<T = unknown> {
  value: T;
  /** Epoch ms after which the value is stale; `0` = never. */
  staleAt: number;
  /** Epoch ms after which the entry is gone from every tier; `0` = never. */
  expiresAt: number;
  /** How long the value took to compute, in ms (0 when unknown). */
  delta: number;
}

/** Options of {@link TieredStore.setEntry}. */
export interface SetEntryOptions {
  /** Logical TTL in ms (default: the store's `ttl`; 0 = never stale). */
  ttl?: number;
  /** Extra ms the entry stays readable as stale after `ttl` (the physical TTL is `ttl + grace`). */
  grace?: number;
  /** How long the value took to compute, in ms (XFetch's delta). */
  delta?: number;
  /**
   * A {@link TieredStore.mutationMark}: when this store wrote or deleted the key since that mark,
   * nothing is written (that newer mutation wins) and `setEntry` resolves false.
   */
  unchangedSince?: number;
}

/** What {@link TieredStore.acquireLease} did. */
export type LeaseOutcome =
  /** This caller holds the lease, on a shared tier. */
  | 'acquired'
  /** Another holder has it. */
  | 'held'
  /** No shared tier can hold leases (none configured, or it failed): coordinate in-process only. */
  | 'local';

const FAILED = Symbol('failed');

/**
 * A Keyv store adapter that chains tiers nearest first (see the README's "Tier engine").
 *
 * - Reads go nearest-first; a hit at tier k backfills tiers 0..k-1 with the remaining TTL,
 *   capped per tier, without delaying the caller.
 * - Writes and deletes reach every tier concurrently. A failing tier is a miss for reads and
 *   never fails a write another tier accepted; it emits `error` and is counted, and a circuit
 *   breaker skips it after consecutive failures.
 * - `clear()` bumps this namespace's generation instead of flushing shared servers.
 */
export class TieredStore extends EventEmitter implements KeyvStoreAdapter {
  /** Options as given (Keyv reads `opts`). */
  readonly opts: TieredStoreOptions;
  /**
   * Keyv's namespace, set by Keyv itself. Keys reaching this store are already prefixed with it;
   * the store's own namespace is `options.namespace`.
   */
  namespace?: string;

  private readonly slots: Slot[];
  private readonly memory: MemoryTier | undefined;
  /** Whether the memory tier is the nearest one (the synchronous fast path). */
  private readonly memoryFirst: boolean;
  /** Whether that tier is also keyed by caller keys (see `Slot.local`): the fastest path. */
  private readonly localFirst: boolean;
  private readonly keys: KeyBuilder;
  private readonly codec: Codec;
  private readonly clock: Clock;
  private readonly defaultTtl: number;
  private readonly generationRefreshMs: number;
  private lastGenerationCheck = 0;
  private generationRefresh: Promise<void> | undefined;
  private connecting: Promise<void> | undefined;
  private closed = false;
  private readonly background = new Set<Promise<unknown>>();
  /** Local mutations per final key, so a slow read never backfills over a newer write or delete. */
  private mutationSeq = 0;
  private readonly lastMutation = new Map<string, number>();
  private mutationFloor = 0;
  /** The tier holding read-through leases: the farthest memcached one, else Cassandra; -1: none. */
  private readonly leaseIndex: number;

  constructor(options: TieredStoreOptions = {}) {
    super();
    this.opts = options;
    this.clock = options.clock ?? systemClock;
    this.keys = new KeyBuilder(options);
    this.codec = new Codec(options.serializer);
    this.defaultTtl = checkTtl('ttl', options.ttl ?? 0);
    this.generationRefreshMs = checkTtl('generationRefreshMs', options.generationRefreshMs ?? 5000);
    const tiers = options.tiers ?? [{ type: 'memory' }];
    if (!Array.isArray(tiers) || tiers.length === 0) {
      throw new TypeError(
        'tiers: must be a non-empty array of { type: "memory" | "memcached" | "cassandra", … }',
      );
    }
    const seen = new Map<string, number>();
    this.slots = tiers.map((t, i) => {
      const count = (seen.get(t?.type) ?? 0) + 1;
      seen.set(t?.type, count);
      return this.createSlot(t, i, t?.name ?? (count > 1 ? `${t.type}[${count - 1}]` : t?.type));
    });
    const memorySlots = this.slots.filter((s) => s.kind === 'memory');
    if (memorySlots.length > 1) throw new TypeError('tiers: at most one memory tier');
    this.memory = memorySlots[0]?.tier as MemoryTier | undefined;
    this.memoryFirst = this.memory !== undefined && this.slots[0].tier === this.memory;
    this.localFirst = this.memoryFirst && this.slots[0].local;
    const memcached = this.slots.findLastIndex((s) => s.kind === 'memcached');
    this.leaseIndex =
      memcached >= 0 ? memcached : this.slots.findIndex((s) => s.kind === 'cassandra');
  }

  private createSlot(t: TierOptions, i: number, name: string): Slot {
    const at = `tiers[${i}]`;
    if (t === null || typeof t !== 'object')
      throw new TypeError(`${at}: must be an object with a "type"`);
    let tier: Tier<Payload>;
    let mode: PayloadMode;
    let cap: number;
    try {
      ({ tier, mode, cap } = this.constructTier(t, name, checkTtl(`${t.type} ttl`, t.ttl ?? 0)));
    } catch (err) {
      throw err instanceof TypeError
        ? new TypeError(locate(err.message, at, t.type), { cause: err })
        : err;
    }
    return {
      tier,
      name,
      kind: t.type,
      cap,
      mode,
      local: t.type === 'memory' && this.opts.keyFn === undefined,
      breaker: new CircuitBreaker(this.opts.circuitBreaker ?? {}, this.clock),
      counters: new TierCounters(),
      // The memory tier has nothing to connect to: its writes land synchronously from the start.
      connected: t.type === 'memory',
    };
  }

  private constructTier(
    t: TierOptions,
    name: string,
    cap: number,
  ): { tier: Tier<Payload>; mode: PayloadMode; cap: number } {
    let tier: Tier<Payload>;
    let mode: PayloadMode = 'encoded';
    switch (t.type) {
      case 'memory':
        cap = checkTtl('memory ttl', t.ttl ?? MEMORY_DEFAULTS.ttl);
        if (t.serialize !== undefined && typeof t.serialize !== 'boolean')
          throw new TypeError(`serialize: ${String(t.serialize)} is not true or false`);
        mode = t.serialize === false ? 'shared' : 'copies';
        tier = new MemoryTier(t, this.clock, name) as Tier<Payload>;
        break;
      case 'memcached':
        tier = new MemcachedTier(t, name) as Tier<Payload>;
        break;
      case 'cassandra':
        tier = new CassandraTier(t, name) as Tier<Payload>;
        break;
      default:
        throw new TypeError(
          `type: ${JSON.stringify((t as { type: unknown }).type)} is not one of "memory", "memcached", "cassandra"`,
        );
    }
    return { tier, mode, cap };
  }

  /** This namespace's current generation (bumped by `clear()`). */
  get generation(): number {
    return this.keys.generation;
  }

  /**
   * Connects every tier and reads the namespace generation. A tier that cannot connect is
   * reported (`error` event), counted and skipped by its circuit breaker; it never rejects unless
   * `failFast` is set, then the first failure rejects.
   */
  connect(options: { failFast?: boolean } = {}): Promise<void> {
    this.connecting ??= this.doConnect(options.failFast ?? false);
    return this.connecting;
  }

  private async doConnect(failFast: boolean): Promise<void> {
    await Promise.all(
      this.slots.map(async (slot) => {
        try {
          await this.ensureConnected(slot);
          slot.breaker.success();
        } catch (err) {
          if (failFast) throw err;
          this.fail(slot, 'connect', undefined, err);
        }
      }),
    );
    // A tier that just failed to connect is not asked again right away.
    if (this.authority()?.connected !== false) await this.refreshGeneration();
  }

  // ---------------------------------------------------------------- reads

  /**
   * Reads `key`: nearest tier first, backfilling nearer tiers after a far hit. A tier that fails
   * is a miss there (plus an `error` event); only an unusable key rejects.
   */
  get<T>(key: string): Promise<T | undefined> {
    // Deliberately not `async`: a memory-tier hit, the hottest path, costs one resolved promise.
    if (this.localFirst && typeof key === 'string') {
      const record = (this.memory as MemoryTier).peek(key);
      if (record !== undefined && isFresh(record, this.clock))
        return this.memoryHit<T>(record, key);
    }
    let k: string;
    try {
      k = this.keys.build(key);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.memoryFirst) {
      if (!this.localFirst || typeof key !== 'string') {
        const record = (this.memory as MemoryTier).peek(keyIn(this.slots[0], key, k));
        if (record !== undefined && isFresh(record, this.clock))
          return this.memoryHit<T>(record, key);
      }
      this.slots[0].counters.misses++;
      if (this.slots.length === 1) return Promise.resolve(undefined);
    }
    return this.getFromTiers(key, k, this.clock.now(), this.memoryFirst ? 1 : 0, false).then(
      valueOf,
    ) as Promise<T | undefined>;
  }

  /**
   * A hit in the nearest tier, the memory one. Its entries live at most the tier's TTL cap (the
   * staleness bound between instances), so a hit needs no generation check.
   */
  private memoryHit<T>(record: MemoryRecord, key: string): Promise<T> {
    const slot = this.slots[0];
    slot.counters.hits++;
    return Promise.resolve(this.readValue(slot, record, key) as T);
  }

  /**
   * Reads `key` for read-through (`getOrSet`): like {@link get}, but a value past its logical
   * expiry is still returned, with its metadata, until its grace period ends.
   *
   * `scope` narrows the tiers read: `'shared'` starts at the tier that holds leases, skipping
   * process-local ones, so a fresh value written by another process is seen even while a nearer
   * tier still holds a stale copy; `'lease'` reads that tier alone (one round trip: every
   * read-through write reaches it). Both read every tier when no tier holds leases.
   */
  async getEntry<T>(
    key: string,
    options: { scope?: 'all' | 'shared' | 'lease' } = {},
  ): Promise<StoredEntry<T> | undefined> {
    const k = this.keys.build(key);
    const scope = options.scope ?? 'all';
    const lease = scope === 'all' ? -1 : this.leaseIndex;
    const from = Math.max(lease, 0);
    const to = scope === 'lease' && lease >= 0 ? lease + 1 : this.slots.length;
    const record = await this.getFromTiers(key, k, this.clock.now(), from, true, to);
    return record && toEntry<T>(record);
  }

  /**
   * The entry of `key` in the memory tier when it is the nearest tier, synchronously (stale ones
   * included): read-through's fast path (`@Cached` hits). `undefined` on a miss there or without
   * such a tier. Counts a hit only: the {@link getEntry} that follows a miss counts it.
   */
  peekEntry<T>(key: string): StoredEntry<T> | undefined {
    if (!this.memoryFirst) return undefined;
    const slot = this.slots[0];
    const local = this.localFirst && typeof key === 'string';
    const payload = (this.memory as MemoryTier).peek(
      local ? key : keyIn(slot, key, this.keys.build(key)),
    );
    const record = payload && this.decode(slot, payload, key, this.clock.now());
    if (record === undefined) return undefined;
    slot.counters.hits++;
    return toEntry<T>(record);
  }

  /** First live record from tier `from` on; stale ones count only when `graced`. */
  private async getFromTiers(
    key: string,
    k: string,
    now: number,
    from: number,
    graced: boolean,
    to = this.slots.length,
  ): Promise<CacheRecord | undefined> {
    if (now - this.lastGenerationCheck >= this.generationRefreshMs)
      this.scheduleGenerationRefresh(now);
    const seq = this.mutationSeq;
    for (let i = from; i < to; i++) {
      const slot = this.slots[i];
      const at = keyIn(slot, key, k);
      const payload = await this.call(slot, 'get', key, () => slot.tier.get(at));
      if (payload === FAILED) continue;
      const record = payload === undefined ? undefined : this.decode(slot, payload, key, now);
      if (record === undefined || (!graced && isStale(record, now))) {
        slot.counters.misses++;
        continue;
      }
      slot.counters.hits++;
      if (i > 0) this.backfill(i, [{ key, k, record, payload: payload as Payload }], seq);
      return record;
    }
    return undefined;
  }

  async getMany<T>(keys: string[]): Promise<Array<T | undefined>> {
    const finals = keys.map((key) => this.keys.build(key));
    const now = this.clock.now();
    if (now - this.lastGenerationCheck >= this.generationRefreshMs)
      this.scheduleGenerationRefresh(now);
    const seq = this.mutationSeq;
    const out: Array<T | undefined> = new Array(keys.length).fill(undefined);
    // Keys still missing, deduplicated by final key, with the positions that asked for each.
    const positions = new Map<string, { key: string; at: number[] }>();
    finals.forEach((k, i) => {
      const seen = positions.get(k);
      if (seen === undefined) positions.set(k, { key: String(keys[i]), at: [i] });
      else seen.at.push(i);
    });
    let missing = [...positions.keys()];
    for (let t = 0; t < this.slots.length && missing.length > 0; t++) {
      const slot = this.slots[t];
      const asked = slot.local ? missing.map((k) => positions.get(k)!.key) : missing;
      const payloads = await this.call(slot, 'getMany', undefined, () => slot.tier.getMany(asked));
      if (payloads === FAILED) continue;
      const stillMissing: string[] = [];
      const found: Found[] = [];
      missing.forEach((k, j) => {
        const payload = payloads[j];
        const { key, at } = positions.get(k)!;
        const record = payload === undefined ? undefined : this.decode(slot, payload, key, now);
        if (record === undefined || isStale(record, now)) {
          slot.counters.misses++;
          stillMissing.push(k);
          return;
        }
        slot.counters.hits++;
        found.push({ key, k, record, payload: payload as Payload });
        out[at[0]] = record.value as T;
        // A key asked for twice: each position gets its own copy unless the tier shares objects.
        for (let p = 1; p < at.length; p++)
          out[at[p]] = (
            slot.mode === 'shared' ? record.value : this.decode(slot, payload!, key, now)?.value
          ) as T;
      });
      if (t > 0 && found.length > 0) this.backfill(t, found, seq);
      missing = stillMissing;
    }
    return out;
  }

  async has(key: string): Promise<boolean> {
    return (await this.get(key)) !== undefined;
  }

  async hasMany(keys: string[]): Promise<boolean[]> {
    return (await this.getMany(keys)).map((v) => v !== undefined);
  }

  private decode(slot: Slot, payload: Payload, key: string, now: number): CacheRecord | undefined {
    if (slot.mode !== 'encoded') {
      const r = payload as MemoryRecord;
      if (r.expiresAt !== 0 && r.expiresAt <= now) return undefined;
      if (slot.mode === 'shared') return r;
      return {
        value: this.readValue(slot, r, key),
        expiresAt: r.expiresAt,
        staleAt: r.staleAt,
        delta: r.delta,
      };
    }
    let record: CacheRecord;
    try {
      record = this.codec.decode(payload as Buffer);
    } catch (err) {
      this.fail(slot, 'decode', key, err, false);
      return undefined;
    }
    return record.expiresAt !== 0 && record.expiresAt <= now ? undefined : record;
  }

  /** What a reader of a memory record gets: its own copy, unless the tier shares objects. */
  private readValue(slot: Slot, record: MemoryRecord, key: string): unknown {
    // The copy hint is worked out on the first read, not on the backfill: many are never re-read.
    if (record.tree)
      return copyJsonTree(record.value, (record.nested ??= nestedKeys(record.value as object)));
    if (record.encoded === undefined) return record.value;
    try {
      return this.codec.decode(record.encoded).value;
    } catch (err) {
      // Bytes that decoded once when they were stored: only a fault in memory gets here.
      this.fail(slot, 'decode', key, err, false);
      return undefined;
    }
  }

  /** Copies hits found at tier `from` into the nearer tiers, in the background. */
  private backfill(from: number, found: Found[], seq: number): void {
    // A read that began before a local write, delete or generation change has nothing to add.
    if (seq < this.mutationFloor) return;
    const now = this.clock.now();
    const source = this.slots[from];
    for (let t = 0; t < from; t++) {
      const slot = this.slots[t];
      let writes: TierWrite<Payload>[] | undefined;
      for (const { key, k, record, payload } of found) {
        if ((this.lastMutation.get(k) ?? -1) > seq) continue;
        const remaining = record.expiresAt === 0 ? 0 : record.expiresAt - now;
        if (record.expiresAt !== 0 && remaining <= 0) continue;
        const ttlMs = capTtl(remaining, slot.cap);
        slot.counters.backfills++;
        if (slot.mode !== 'encoded') {
          // The one memory tier, filled from a farther tier, which holds bytes: written at once.
          const meta = metaOf(record);
          const p = memoryRecord(
            slot.mode,
            record.value,
            payload as Buffer,
            record.expiresAt,
            meta,
          );
          (slot.tier as MemoryTier).put(keyIn(slot, key, k), p, ttlMs);
          continue;
        }
        const p =
          source.mode === 'encoded'
            ? payload
            : this.codec.encode(record.value, record.expiresAt, metaOf(record));
        (writes ??= []).push({ key: k, value: p, ttlMs });
      }
      if (writes === undefined) continue;
      const batch = writes;
      this.inBackground(
        this.call(slot, 'backfill', batch.length === 1 ? batch[0].key : undefined, () =>
          batch.length === 1
            ? slot.tier.set(batch[0].key, batch[0].value, batch[0].ttlMs)
            : slot.tier.setMany(batch),
        ),
      );
    }
  }

  // ---------------------------------------------------------------- writes

  /**
   * Stores `value` under `key` in every tier. `ttl` in ms (default: the store's `ttl`; `0` = no
   * expiry), capped per tier. Throws a `TypeError` (and writes nothing) when the value cannot be
   * serialized; resolves true when at least one tier accepted the write.
   */
  async set(key: string, value: unknown, ttl?: number): Promise<boolean> {
    const k = this.keys.build(key);
    const ttlMs = ttl === undefined ? this.defaultTtl : checkTtl('ttl', ttl);
    return this.writeEverywhere(key, k, this.prepare(value, ttlMs), ttlMs);
  }

  /**
   * Stores a read-through entry: `value` is fresh for `ttl`, then stale (readable through
   * {@link getEntry} only) for `grace` more ms; every tier gets `ttl + grace`, capped. With
   * `unchangedSince`, a write or delete of the key made through this store since that mark wins
   * and nothing is written. Resolves whether it wrote.
   */
  async setEntry(key: string, value: unknown, options: SetEntryOptions = {}): Promise<boolean> {
    const k = this.keys.build(key);
    const ttlMs = options.ttl === undefined ? this.defaultTtl : checkTtl('ttl', options.ttl);
    const grace = checkTtl('grace', options.grace ?? 0);
    const now = this.clock.now();
    const meta: EntryMeta = { staleAt: ttlMs > 0 ? now + ttlMs : 0, delta: options.delta ?? 0 };
    const physical = ttlMs > 0 ? ttlMs + grace : 0;
    if (options.unchangedSince !== undefined && this.changedSince(k, options.unchangedSince))
      return false;
    return this.writeEverywhere(key, k, this.prepare(value, physical, meta), physical);
  }

  /** One encoded value into every tier, concurrently, each with its capped TTL. */
  private async writeEverywhere(
    key: string,
    k: string,
    outgoing: Outgoing,
    ttlMs: number,
  ): Promise<boolean> {
    this.mutated(k);
    const results = await Promise.all(
      this.slots.map((slot) =>
        this.write(slot, 'set', key, () =>
          slot.tier.set(keyIn(slot, key, k), outgoing.payloadFor(slot), capTtl(ttlMs, slot.cap)),
        ),
      ),
    );
    return this.accepted(results, 'set', key);
  }

  /** A mark for {@link SetEntryOptions.unchangedSince}. */
  mutationMark(): number {
    return this.mutationSeq;
  }

  private changedSince(k: string, mark: number): boolean {
    return this.mutationFloor > mark || (this.lastMutation.get(k) ?? -1) > mark;
  }

  async setMany(entries: Array<{ key: string; value: unknown; ttl?: number }>): Promise<void> {
    const prepared = entries.map((e) => {
      const ttlMs = e.ttl === undefined ? this.defaultTtl : checkTtl('ttl', e.ttl);
      const k = this.keys.build(e.key);
      return { key: e.key, k, ttlMs, outgoing: this.prepare(e.value, ttlMs) };
    });
    for (const p of prepared) this.mutated(p.k);
    const results = await Promise.all(
      this.slots.map((slot) =>
        this.write(slot, 'setMany', undefined, () =>
          slot.tier.setMany(
            prepared.map((p) => ({
              key: keyIn(slot, p.key, p.k),
              value: p.outgoing.payloadFor(slot),
              ttlMs: capTtl(p.ttlMs, slot.cap),
            })),
          ),
        ),
      ),
    );
    this.accepted(results, 'setMany', undefined);
  }

  /**
   * Deletes `key` from every tier, and its read-through lease: a `getOrSet` refresh in flight
   * anywhere then does not write its value back. Resolves true when every reachable tier
   * accepted the delete.
   */
  async delete(key: string): Promise<boolean> {
    const k = this.keys.build(key);
    this.mutated(k);
    const [, ...results] = await Promise.all([
      this.invalidateLeases([key]),
      ...this.slots.map((slot) =>
        this.write(slot, 'delete', key, () => slot.tier.delete(keyIn(slot, key, k))),
      ),
    ]);
    return this.accepted(results, 'delete', key) && results.every(Boolean);
  }

  async deleteMany(keys: string[]): Promise<boolean> {
    const finals = keys.map((key) => this.keys.build(key));
    for (const k of finals) this.mutated(k);
    const [, ...results] = await Promise.all([
      this.invalidateLeases(keys),
      ...this.slots.map((slot) =>
        this.write(slot, 'deleteMany', undefined, () =>
          slot.tier.deleteMany(slot.local ? keys.map(String) : finals),
        ),
      ),
    ]);
    return this.accepted(results, 'deleteMany', undefined) && results.every(Boolean);
  }

  // ---------------------------------------------------------------- leases

  /**
   * Takes the read-through lease on `key` for `ttlMs`: an `add` on the farthest memcached tier,
   * else a lightweight transaction on Cassandra. `token` names the holder. Resolves `'local'`
   * when no shared tier can hold it (memory only, or the tier failed: an `error` event), so that
   * read-through degrades to in-process protection instead of waiting on a lease nobody holds.
   */
  async acquireLease(key: string, token: Buffer, ttlMs: number): Promise<LeaseOutcome> {
    const slot = this.leaseSlot();
    if (slot === undefined) return 'local';
    const lk = this.keys.leaseKey(key);
    const added = await this.call(slot, 'lease', key, () => slot.tier.add(lk, token, ttlMs));
    if (added === FAILED) return 'local';
    return added ? 'acquired' : 'held';
  }

  /** The token of the lease on `key`; `undefined` when none; `null` when it cannot be read. */
  async leaseHolder(key: string): Promise<Buffer | undefined | null> {
    const slot = this.leaseSlot();
    if (slot === undefined) return null;
    const lk = this.keys.leaseKey(key);
    const holder = await this.call(slot, 'lease', key, () => slot.tier.get(lk));
    return holder === FAILED ? null : (holder as Buffer | undefined);
  }

  /** Releases the lease on `key` if `token` still holds it (a later holder's lease is kept). */
  async releaseLease(key: string, token: Buffer): Promise<void> {
    const slot = this.leaseSlot();
    if (slot === undefined) return;
    const lk = this.keys.leaseKey(key);
    await this.call(slot, 'lease release', key, () => slot.tier.deleteIf(lk, token));
  }

  private async invalidateLeases(keys: string[]): Promise<void> {
    const slot = this.leaseSlot();
    if (slot === undefined) return;
    const leaseKeys = keys.map((key) => this.keys.leaseKey(key));
    await this.call(slot, 'lease invalidate', keys.length === 1 ? keys[0] : undefined, () =>
      leaseKeys.length === 1 ? slot.tier.delete(leaseKeys[0]) : slot.tier.deleteMany(leaseKeys),
    );
  }

  private leaseSlot(): Slot | undefined {
    return this.slots[this.leaseIndex];
  }

  /**
   * Invalidates everything of this namespace and version, on every instance, without flushing
   * shared servers: bumps the generation held by the farthest shared tier and empties the local
   * memory tier. Other instances pick the new generation up within `generationRefreshMs`.
   */
  async clear(): Promise<void> {
    const authority = this.authority();
    if (authority === undefined) {
      this.startGeneration(this.keys.generation + 1);
    } else {
      const gen = await this.call(authority, 'clear', undefined, () =>
        authority.tier.increment(this.keys.generationKey, 1, 0),
      );
      if (gen === FAILED)
        throw new Error(`clear(): ${authority.name} could not bump the namespace generation`);
      this.startGeneration(Math.max(gen, this.keys.generation + 1));
    }
    this.lastGenerationCheck = this.clock.now();
  }

  // ---------------------------------------------------------------- counters

  /**
   * Adds `by` to the counter at `key` and returns the new value. The farthest shared tier is
   * authoritative (Cassandra's counter table, else memcached incr); nearer tiers get a copy.
   * Memcached and the memory tier floor counters at 0. Never retried in a way that could count
   * twice: when the authoritative tier fails, the error reaches the caller.
   */
  async increment(key: string, by = 1, ttl?: number): Promise<number> {
    if (!Number.isSafeInteger(by))
      throw new TypeError(`increment: by must be a safe integer, got ${String(by)}`);
    const k = this.keys.build(key);
    const ttlMs = ttl === undefined ? this.defaultTtl : checkTtl('ttl', ttl);
    const authority = this.authority() ?? this.slots[0];
    this.mutated(k);
    const seq = this.mutationSeq;
    // Counters go around the circuit breaker: a skipped increment would be a lost count.
    const value = await this.attempt(authority, 'increment', key, () =>
      authority.tier.increment(keyIn(authority, key, k), by, capTtl(ttlMs, authority.cap)),
    );
    // A newer write, delete or increment of the key, or a new generation, wins over this copy.
    if (this.changedSince(k, seq)) return value;
    // Copies for the nearer tiers (a counter copy is the plain decimal, readable by `get`).
    const copy = new Outgoing(value, 0, Buffer.from(String(value), 'latin1'));
    await Promise.all(
      this.slots
        .slice(0, this.slots.indexOf(authority))
        .map((slot) =>
          this.write(slot, 'increment copy', key, () =>
            slot.tier.set(keyIn(slot, key, k), copy.payloadFor(slot), capTtl(ttlMs, slot.cap)),
          ),
        ),
    );
    return value;
  }

  decrement(key: string, by = 1, ttl?: number): Promise<number> {
    return this.increment(key, -by, ttl);
  }

  // ---------------------------------------------------------------- lifecycle & stats

  /** Per-tier counters, nearest tier first. */
  stats(): TierStats[] {
    return this.slots.map((s) => ({
      name: s.name,
      kind: s.kind,
      hits: s.counters.hits,
      misses: s.counters.misses,
      errors: s.counters.errors,
      backfills: s.counters.backfills,
      skipped: s.counters.skipped,
      circuitOpened: s.breaker.opened,
      circuit: s.breaker.state,
      latency: s.counters.latency(),
    }));
  }

  /** Closes every tier's sockets. */
  async disconnect(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Let backfills and generation reads in flight finish before their sockets go.
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
    await Promise.all(
      this.slots.map((s) => s.tier.close().catch((err) => this.fail(s, 'close', undefined, err))),
    );
  }

  // ---------------------------------------------------------------- internals

  /** Tracks work the caller does not wait for, so `disconnect()` can. */
  private inBackground<T>(work: Promise<T>): Promise<T> {
    this.background.add(work);
    const done = () => void this.background.delete(work);
    work.then(done, done);
    return work;
  }

  private prepare(value: unknown, ttlMs: number, meta?: EntryMeta): Outgoing {
    const expiresAt = ttlMs > 0 ? this.clock.now() + ttlMs : 0;
    return new Outgoing(value, expiresAt, this.codec.encode(value, expiresAt, meta), meta);
  }

  private mutated(k: string): void {
    this.lastMutation.set(k, ++this.mutationSeq);
    if (this.lastMutation.size > 10_000) {
      // Bounded memory: forget per-key history; reads begun before now skip their backfill.
      this.lastMutation.clear();
      this.mutationFloor = ++this.mutationSeq;
    }
  }

  /** The tier holding counters and the namespace generation: the farthest shared one. */
  private authority(): Slot | undefined {
    for (let i = this.slots.length - 1; i >= 0; i--)
      if (this.slots[i].kind !== 'memory') return this.slots[i];
    return undefined;
  }

  private scheduleGenerationRefresh(now: number): void {
    this.lastGenerationCheck = now;
    this.generationRefresh ??= this.inBackground(this.refreshGeneration()).finally(
      () => (this.generationRefresh = undefined),
    );
  }

  /**
   * Re-reads this namespace's generation from the farthest shared tier now (reads do this on
   * their own every `generationRefreshMs`). When it changed, the memory tier is emptied.
   */
  async refreshGeneration(): Promise<void> {
    const authority = this.authority();
    this.lastGenerationCheck = this.clock.now();
    if (authority === undefined) return;
    const gen = await this.call(authority, 'generation', undefined, () =>
      authority.tier.increment(this.keys.generationKey, 0, 0),
    );
    if (gen !== FAILED && gen !== this.keys.generation) this.startGeneration(gen);
  }

  /**
   * Moves to generation `gen`: new final keys, an empty memory tier, and no backfill from reads
   * begun before (they read the old generation; the memory tier may be keyed by caller keys).
   */
  private startGeneration(gen: number): void {
    this.keys.generation = gen;
    this.memory?.clear();
    this.mutationFloor = ++this.mutationSeq;
  }

  /** Connects a tier once at a time; a tier whose connect failed is tried again by its next operation. */
  private ensureConnected(slot: Slot): Promise<void> {
    slot.connecting ??= slot.tier
      .connect()
      .then(() => void (slot.connected = true))
      .finally(() => (slot.connecting = undefined));
    return slot.connecting;
  }

  /** Runs one tier operation behind its circuit breaker; failures become FAILED plus an event. */
  private call<T>(
    slot: Slot,
    op: string,
    key: string | undefined,
    fn: () => Promise<T>,
  ): Promise<T | typeof FAILED> {
    if (!slot.breaker.allow()) {
      slot.counters.skipped++;
      return Promise.resolve(FAILED);
    }
    return this.run(slot, op, key, fn, false);
  }

  /** Runs one tier operation, connecting the tier first if needed; failures are counted and rethrown. */
  private attempt<T>(
    slot: Slot,
    op: string,
    key: string | undefined,
    fn: () => Promise<T>,
  ): Promise<T> {
    return this.run(slot, op, key, fn, true) as Promise<T>;
  }

  /**
   * The body of {@link call} and {@link attempt}: one `then` on the tier's promise (no `async`
   * frame, no extra `catch`), as it sits on every remote read.
   */
  private run<T>(
    slot: Slot,
    op: string,
    key: string | undefined,
    fn: () => Promise<T>,
    rethrow: boolean,
  ): Promise<T | typeof FAILED> {
    const failed = (err: unknown): typeof FAILED => {
      this.fail(slot, op, key, err);
      if (rethrow) throw err;
      return FAILED;
    };
    if (!slot.connected) {
      return this.ensureConnected(slot).then(() => this.run(slot, op, key, fn, rethrow), failed);
    }
    const t0 = slot.kind === 'memory' ? 0 : performance.now();
    let pending: Promise<T>;
    try {
      pending = fn();
    } catch (err) {
      pending = Promise.reject(err);
    }
    return pending.then((result) => {
      slot.breaker.success();
      if (slot.kind !== 'memory') slot.counters.recordLatency(performance.now() - t0);
      return result;
    }, failed);
  }

  private async write(
    slot: Slot,
    op: string,
    key: string | undefined,
    fn: () => Promise<void>,
  ): Promise<boolean> {
    return (await this.call(slot, op, key, fn)) !== FAILED;
  }

  private accepted(results: boolean[], op: string, key: string | undefined): boolean {
    if (results.some(Boolean)) return true;
    throw new Error(
      `${op}${key === undefined ? '' : ` ${JSON.stringify(key)}`}: no tier accepted the write (${this.slots
        .map((s) => `${s.name}: ${s.breaker.state === 'closed' ? 'failed' : 'circuit open'}`)
        .join(', ')})`,
    );
  }

  private fail(
    slot: Slot,
    op: string,
    key: string | undefined,
    err: unknown,
    tierFault = true,
  ): void {
    slot.counters.errors++;
    if (tierFault) slot.breaker.failure();
    if (this.listenerCount('error') > 0) this.emit('error', new TierError(slot.name, op, key, err));
  }
}

/**
 * Puts an option error in place: tier classes name fields from their own point of view
 * (`memcached servers[0]: …`, `cassandra keyspace: …`); the store says where the tier sits:
 * `tiers[1].servers[0]: …`.
 */
function locate(message: string, at: string, type: string): string {
  for (const prefix of [`${type} `, `${type}.`]) {
    if (message.startsWith(prefix)) return `${at}.${message.slice(prefix.length)}`;
  }
  return /^[A-Za-z_][\w[\]]*:/.test(message) ? `${at}.${message}` : `${at} (${type}): ${message}`;
}

/** The value a record holds, `undefined` for none. */
function valueOf(record: CacheRecord | undefined): unknown {
  return record?.value;
}

/** The key `slot` holds `key` under: the caller's own (see `Slot.local`) or the final `k`. */
function keyIn(slot: Slot, key: string, k: string): string {
  return slot.local ? String(key) : k;
}

/** Whether a record is past its logical expiry (read-through entries only; plain ones have none). */
function isStale(record: CacheRecord, now: number): boolean {
  const staleAt = record.staleAt;
  return staleAt !== undefined && staleAt !== 0 && staleAt <= now;
}

function toEntry<T>(record: CacheRecord): StoredEntry<T> {
  return {
    value: record.value as T,
    expiresAt: record.expiresAt,
    staleAt: record.staleAt ?? record.expiresAt,
    delta: record.delta ?? 0,
  };
}

/**
 * What the memory tier keeps for `value`, whose encoded entry is `encoded`, with its read-through
 * metadata if any. In `copies` mode objects are never kept as the caller's (or another reader's)
 * own: a JSON tree gets a private copy; any other object keeps its bytes, in a buffer of their
 * own (a slice would pin its whole parent: a socket read, or the 8 KiB pool `allocUnsafe` uses).
 */
function memoryRecord(
  mode: PayloadMode,
  value: unknown,
  encoded: Buffer,
  expiresAt: number,
  meta: EntryMeta | undefined,
): MemoryRecord {
  const record: MemoryRecord = {
    value,
    expiresAt,
    size: encoded.length,
    staleAt: meta?.staleAt,
    delta: meta?.delta,
    tree: false,
    nested: undefined,
    encoded: undefined,
  };
  if (mode === 'copies' && typeof value === 'object' && value !== null) {
    if (hasJsonBody(encoded)) {
      record.value = copyJsonTree(value);
      record.tree = true;
    } else {
      record.value = undefined;
      record.encoded = ownCopy(encoded);
    }
  }
  return record;
}

/** Whether a memory record is live and not past its logical expiry; reads the clock only if needed. */
function isFresh(record: MemoryRecord, clock: Clock): boolean {
  const expiresAt = record.expiresAt;
  const staleAt = record.staleAt;
  if (expiresAt === 0 && !staleAt) return true;
  const now = clock.now();
  return (expiresAt === 0 || expiresAt > now) && (!staleAt || staleAt > now);
}

function metaOf(record: CacheRecord): EntryMeta | undefined {
  return record.staleAt === undefined
    ? undefined
    : { staleAt: record.staleAt, delta: record.delta ?? 0 };
}

/** Effective TTL for a tier: the requested one capped by the tier's cap (0 = none on either side). */
function capTtl(ttlMs: number, cap: number): number {
  if (cap === 0) return ttlMs;
  if (ttlMs === 0) return cap;
  return Math.min(ttlMs, cap);
}

function checkTtl(field: string, ttl: number): number {
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) {
    throw new TypeError(
      `${field}: ${String(ttl)} is not a number of milliseconds >= 0 (0 = no expiry)`,
    );
  }
  return Math.ceil(ttl);
}

/** Creates a tiered Keyv store adapter: `new Keyv({ store: createTieredStore(options) })`. */
export function createTieredStore(options: TieredStoreOptions = {}): TieredStore {
  return new TieredStore(options);
}
