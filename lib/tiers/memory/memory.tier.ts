import { LRUCache } from 'lru-cache';
import { systemClock } from '../../clock';
import { TieredCacheError } from '../../errors';
import { at, integer, onlyKnownKeys, optionNames, optionsObject } from '../../options';
import { checkRaised } from '../max-register';
import {
  localRecord,
  type LocalRecord,
  type LocalTier,
  type TierCapabilities,
  type TierWrite,
} from '../tier.interface';
import type { TierContext } from '../tier-options';
import { MEMORY_DEFAULTS, type MemoryTierOptions } from './memory.options';

const CAPABILITIES = {
  local: true,
  leases: false,
  counters: false,
  enumerate: true,
  ttlResolutionMs: 1,
  maxKeyBytes: Infinity,
} as const satisfies TierCapabilities;

const MEMORY_OPTIONS = optionNames<MemoryTierOptions>({
  type: true,
  ttl: true,
  name: true,
  maxBytes: true,
  maxEntries: true,
  serialize: true,
});

/**
 * Process memory: an LRU (lru-cache) bounded by bytes (entries' encoded size and key length) and
 * by entries. It holds {@link LocalRecord}s; what they keep, and so what a reader gets, is the
 * store's choice (see `MemoryTierOptions.serialize`).
 *
 * Its `increment` keeps a process-local count (used when no shared tier can count); it does not
 * claim the `counters` capability, which means counters every process sees.
 */
export class MemoryTier implements LocalTier {
  readonly kind = 'memory';
  readonly capabilities = CAPABILITIES;
  readonly name: string;
  private readonly lru: LRUCache<string, LocalRecord>;
  private closed = false;

  constructor(options: MemoryTierOptions = { type: 'memory' }, context: TierContext = {}) {
    const path = context.path ?? 'memory';
    this.name = context.name ?? options.name ?? 'memory';
    const o = optionsObject(path, options);
    onlyKnownKeys(path, o, MEMORY_OPTIONS);
    const maxBytes = integer(at(path, 'maxBytes'), o.maxBytes, MEMORY_DEFAULTS.maxBytes, 1);
    const maxEntries = integer(at(path, 'maxEntries'), o.maxEntries, MEMORY_DEFAULTS.maxEntries, 1);
    if (o.serialize !== undefined && typeof o.serialize !== 'boolean')
      throw new TypeError(`${at(path, 'serialize')}: ${String(o.serialize)} is not true or false`);
    this.lru = new LRUCache<string, LocalRecord>({
      max: maxEntries,
      maxSize: maxBytes,
      sizeCalculation: (r, key) => entrySize(r, key),
      perf: context.clock ?? systemClock,
    });
  }

  /** Number of entries held. */
  get size(): number {
    return this.lru.size;
  }

  /** Bytes held: the entries' encoded size plus their keys' length. */
  get bytes(): number {
    return this.lru.calculatedSize;
  }

  async connect(): Promise<void> {}

  peek(key: string): LocalRecord | undefined {
    return this.lru.get(key);
  }

  async get(key: string): Promise<LocalRecord | undefined> {
    this.assertOpen();
    return this.lru.get(key);
  }

  async getMany(keys: readonly string[]): Promise<(LocalRecord | undefined)[]> {
    this.assertOpen();
    return keys.map((k) => this.lru.get(k));
  }

  /** Synchronous write; ignored once the tier is closed. */
  put(key: string, record: LocalRecord, ttlMs: number): void {
    if (this.closed) return;
    if (entrySize(record, key) > this.lru.maxSize) {
      // Larger than the whole budget: lru-cache would refuse it; drop any older value instead.
      this.lru.delete(key);
      return;
    }
    this.lru.set(key, record, { ttl: ttlMs > 0 ? ttlMs : undefined });
  }

  async set(key: string, record: LocalRecord, ttlMs: number): Promise<void> {
    this.assertOpen();
    this.put(key, record, ttlMs);
  }

  async setMany(entries: readonly TierWrite<LocalRecord>[]): Promise<void> {
    this.assertOpen();
    for (const e of entries) this.put(e.key, e.value, e.ttlMs);
  }

  async add(key: string, record: LocalRecord, ttlMs: number): Promise<boolean> {
    this.assertOpen();
    if (this.lru.has(key)) return false;
    this.put(key, record, ttlMs);
    return true;
  }

  /** Deletes `key` while it holds `expected`'s value (the same primitive or the same object). */
  async deleteIf(key: string, expected: LocalRecord): Promise<boolean> {
    this.assertOpen();
    const current = this.lru.get(key);
    if (current === undefined || !sameRecordValue(current, expected)) return false;
    this.lru.delete(key);
    return true;
  }

  async delete(key: string): Promise<boolean> {
    this.assertOpen();
    return this.lru.delete(key);
  }

  async deleteMany(keys: readonly string[]): Promise<boolean> {
    this.assertOpen();
    let deleted = false;
    for (const k of keys) if (this.lru.delete(k)) deleted = true;
    return deleted;
  }

  clear(): void {
    this.lru.clear();
  }

  /**
   * The live entries whose key starts with `prefix`, as they are when the first one is asked
   * for (a snapshot of the keys and records, which later writes do not change). Listing does not
   * count as a use: it leaves the LRU order alone.
   */
  async *entries(prefix: string): AsyncGenerator<[key: string, record: LocalRecord]> {
    this.assertOpen();
    const live: [string, LocalRecord][] = [];
    for (const entry of this.lru.entries()) if (entry[0].startsWith(prefix)) live.push(entry);
    yield* live;
  }

  async increment(key: string, by: number, ttlMs: number): Promise<number> {
    this.assertOpen();
    const current = counterOf(this.lru.get(key));
    if (Number.isNaN(current))
      throw new TieredCacheError(
        'E_TIER_FAILED',
        `${this.name}: value at this key is not a counter`,
      );
    // Same floor as memcached: counters are unsigned.
    const next = Math.max(0, current + by);
    this.put(key, localRecord(next), ttlMs);
    return next;
  }

  /**
   * Max-register (see `Tier.raise`), in process: stores `localRecord(n)` (the number itself, as
   * {@link increment} keeps counters) unless the record at `key` holds a number at least as
   * high; any other value is replaced. Storing sets the TTL to `ttlMs`; finding a number at least
   * as high changes nothing.
   *
   * @throws RangeError when `n` is not a non-negative safe integer.
   */
  async raise(key: string, n: number, ttlMs: number): Promise<void> {
    this.assertOpen();
    checkRaised(this.name, n);
    const held = this.lru.get(key)?.value;
    if (typeof held === 'number' && held >= n) return;
    this.put(key, localRecord(n), ttlMs);
  }

  /** Drops everything; later calls reject (`E_CLOSED`), `peek` finds nothing, `put` keeps nothing. */
  async close(): Promise<void> {
    this.closed = true;
    this.lru.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new TieredCacheError('E_CLOSED', `${this.name}: closed`);
  }
}

/** The counter held by a record (counters are kept as numbers), else NaN. */
function counterOf(r: LocalRecord | undefined): number {
  if (r === undefined) return 0;
  return typeof r.value === 'number' ? r.value : NaN;
}

/** What an entry counts against `maxBytes`: its encoded size and its key (UTF-16 units). */
function entrySize(record: LocalRecord, key: string): number {
  return record.size + key.length || 1;
}

function sameRecordValue(a: LocalRecord, b: LocalRecord): boolean {
  if (a.encoded !== undefined || b.encoded !== undefined) {
    return a.encoded !== undefined && b.encoded !== undefined && a.encoded.equals(b.encoded);
  }
  return Object.is(a.value, b.value);
}
