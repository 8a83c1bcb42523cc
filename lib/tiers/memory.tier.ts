import { LRUCache } from 'lru-cache';
import type { Clock } from '../clock';
import type { Tier, TierWrite } from './tier.interface';
import type { MemoryTierOptions } from './tier-options';

/**
 * What the memory tier keeps for an entry. Every field is always present (one object shape keeps
 * the read path monomorphic).
 *
 * How a reader gets the value depends on the tier's `serialize` option (the store builds records):
 * - `serialize: false`: `value` is the very object that was set, handed out as it is;
 * - default, copy on read: either `tree` is true and `value` is a private JSON tree that every
 *   reader gets a copy of, or `value` is undefined and `encoded` holds the entry's bytes, decoded
 *   for every reader (values a JSON body cannot carry: Date, Map, BigInt…). Primitives are
 *   immutable and kept as they are in both modes.
 */
export interface MemoryRecord {
  value: unknown;
  /** Epoch ms after which the entry is gone; `0` = never. */
  expiresAt: number;
  /** The entry's encoded size in bytes: what counts against `maxBytes`. */
  size: number;
  /** Read-through entries only (see `CacheRecord`). */
  staleAt: number | undefined;
  delta: number | undefined;
  /** `value` is a private JSON tree: copy it for each reader. */
  tree: boolean;
  /** With `tree`: the tree's `nestedKeys`, which speed up its copies. */
  nested: readonly string[] | undefined;
  /** The encoded entry, decoded for each reader, when `value` is not kept. */
  encoded: Buffer | undefined;
}

/** The counter held by a record (counters are kept as numbers), else NaN. */
function counterOf(r: MemoryRecord | undefined): number {
  if (r === undefined) return 0;
  return typeof r.value === 'number' ? r.value : NaN;
}

export const MEMORY_DEFAULTS = {
  ttl: 5000,
  maxBytes: 64 * 1024 * 1024,
  maxEntries: 100_000,
} as const;

/**
 * Process memory: an LRU (lru-cache) bounded by bytes (entries' encoded size and key length) and
 * by entries.
 * It holds {@link MemoryRecord}s; what they keep, and so what a reader gets, is the store's
 * choice (see `MemoryTierOptions.serialize`).
 */
export class MemoryTier implements Tier<MemoryRecord> {
  readonly kind = 'memory' as const;
  private readonly lru: LRUCache<string, MemoryRecord>;

  constructor(
    options: MemoryTierOptions,
    clock: Clock,
    readonly name = 'memory',
  ) {
    const maxBytes = options.maxBytes ?? MEMORY_DEFAULTS.maxBytes;
    const maxEntries = options.maxEntries ?? MEMORY_DEFAULTS.maxEntries;
    for (const [field, v] of [
      ['maxBytes', maxBytes],
      ['maxEntries', maxEntries],
    ] as const) {
      if (!Number.isInteger(v) || v < 1) {
        throw new TypeError(`${name}.${field}: ${String(v)} is not a positive whole number`);
      }
    }
    this.lru = new LRUCache<string, MemoryRecord>({
      max: maxEntries,
      maxSize: maxBytes,
      sizeCalculation: (r, key) => entrySize(r, key),
      perf: clock,
    });
  }

  /** A record for `value`, with no expiry or metadata: for counters and tests. */
  static record(value: unknown, size = 16): MemoryRecord {
    return {
      value,
      expiresAt: 0,
      size,
      staleAt: undefined,
      delta: undefined,
      tree: false,
      nested: undefined,
      encoded: undefined,
    };
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

  /** Synchronous read, for the store's fast path. */
  peek(key: string): MemoryRecord | undefined {
    return this.lru.get(key);
  }

  async get(key: string): Promise<MemoryRecord | undefined> {
    return this.lru.get(key);
  }

  async getMany(keys: readonly string[]): Promise<(MemoryRecord | undefined)[]> {
    return keys.map((k) => this.lru.get(k));
  }

  /** Synchronous write, for the store's fast path. */
  put(key: string, record: MemoryRecord, ttlMs: number): void {
    if (entrySize(record, key) > this.lru.maxSize) {
      // Larger than the whole budget: lru-cache would refuse it; drop any older value instead.
      this.lru.delete(key);
      return;
    }
    this.lru.set(key, record, { ttl: ttlMs > 0 ? ttlMs : undefined });
  }

  async set(key: string, record: MemoryRecord, ttlMs: number): Promise<void> {
    this.put(key, record, ttlMs);
  }

  async setMany(entries: readonly TierWrite<MemoryRecord>[]): Promise<void> {
    for (const e of entries) this.put(e.key, e.value, e.ttlMs);
  }

  async add(key: string, record: MemoryRecord, ttlMs: number): Promise<boolean> {
    if (this.lru.has(key)) return false;
    this.put(key, record, ttlMs);
    return true;
  }

  /** Deletes `key` while it holds `expected`'s value (the same primitive or the same object). */
  async deleteIf(key: string, expected: MemoryRecord): Promise<boolean> {
    const current = this.lru.get(key);
    if (current === undefined || !sameRecordValue(current, expected)) return false;
    this.lru.delete(key);
    return true;
  }

  async delete(key: string): Promise<void> {
    this.lru.delete(key);
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    for (const k of keys) this.lru.delete(k);
  }

  /** Drops everything this tier holds (it is private to this process, so that is safe). */
  clear(): void {
    this.lru.clear();
  }

  async increment(key: string, by: number, ttlMs: number): Promise<number> {
    const current = counterOf(this.lru.get(key));
    if (Number.isNaN(current))
      throw new TypeError(`${this.name}: value at this key is not a counter`);
    // Same floor as memcached: counters are unsigned.
    const next = Math.max(0, current + by);
    this.put(key, MemoryTier.record(next), ttlMs);
    return next;
  }

  async close(): Promise<void> {
    this.lru.clear();
  }
}

/** What an entry counts against `maxBytes`: its encoded size and its key (UTF-16 units). */
function entrySize(record: MemoryRecord, key: string): number {
  return record.size + key.length || 1;
}

function sameRecordValue(a: MemoryRecord, b: MemoryRecord): boolean {
  if (a.encoded !== undefined || b.encoded !== undefined) {
    return a.encoded !== undefined && b.encoded !== undefined && a.encoded.equals(b.encoded);
  }
  return Object.is(a.value, b.value);
}
