import { LRUCache } from 'lru-cache';
import type { Clock } from '../clock';
import type { Tier, TierWrite } from './tier.interface';
import type { MemoryTierOptions } from './tier-options';

/** What the object-mode memory tier keeps: the value itself, its expiry and its (encoded) size. */
export interface MemoryRecord {
  value: unknown;
  expiresAt: number;
  size: number;
  /** Read-through entries only (see `CacheRecord`). */
  staleAt?: number;
  delta?: number;
}

/** How a memory tier reads sizes and counters out of its payloads. */
interface PayloadShape<P> {
  size(payload: P): number;
  equals(a: P, b: P): boolean;
  counter(payload: P | undefined): number;
  makeCounter(value: number, expiresAt: number): P;
}

const bytesShape: PayloadShape<Buffer> = {
  size: (b) => b.length || 1,
  equals: (a, b) => a.equals(b),
  counter: (b) => (b === undefined ? 0 : parseCounter(b.toString('latin1'))),
  makeCounter: (n) => Buffer.from(String(n), 'latin1'),
};

const recordShape: PayloadShape<MemoryRecord> = {
  size: (r) => r.size || 1,
  equals: (a, b) => Object.is(a.value, b.value),
  counter: (r) => (r === undefined ? 0 : typeof r.value === 'number' ? r.value : NaN),
  makeCounter: (n, expiresAt) => ({ value: n, expiresAt, size: 16 }),
};

function parseCounter(s: string): number {
  return /^\d{1,20}$/.test(s) ? Number(s) : NaN;
}

export const MEMORY_DEFAULTS = {
  ttl: 5000,
  maxBytes: 64 * 1024 * 1024,
  maxEntries: 100_000,
} as const;

/**
 * Process memory: an LRU (lru-cache) bounded by bytes and by entries.
 *
 * Two payload modes, chosen by the store from `serialize`:
 * - bytes (default): encoded entries; every reader decodes its own copy;
 * - records (`serialize: false`): the caller's object itself, handed out by reference.
 */
export class MemoryTier<
  P extends Buffer | MemoryRecord = Buffer | MemoryRecord,
> implements Tier<P> {
  readonly kind = 'memory' as const;
  private readonly lru: LRUCache<string, P>;

  private constructor(
    readonly name: string,
    options: MemoryTierOptions,
    clock: Clock,
    private readonly shape: PayloadShape<P>,
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
    this.lru = new LRUCache<string, P>({
      max: maxEntries,
      maxSize: maxBytes,
      sizeCalculation: (p) => shape.size(p),
      perf: clock,
    });
  }

  /** Memory tier holding encoded bytes (copy on read). */
  static bytes(options: MemoryTierOptions, clock: Clock, name = 'memory'): MemoryTier<Buffer> {
    return new MemoryTier<Buffer>(name, options, clock, bytesShape);
  }

  /** Memory tier holding the values themselves (`serialize: false`). */
  static records(
    options: MemoryTierOptions,
    clock: Clock,
    name = 'memory',
  ): MemoryTier<MemoryRecord> {
    return new MemoryTier<MemoryRecord>(name, options, clock, recordShape);
  }

  /** Number of entries held. */
  get size(): number {
    return this.lru.size;
  }

  /** Bytes held (encoded size, or the encoded size measured at `set` in record mode). */
  get bytes(): number {
    return this.lru.calculatedSize;
  }

  async connect(): Promise<void> {}

  /** Synchronous read, for the store's fast path. */
  peek(key: string): P | undefined {
    return this.lru.get(key);
  }

  async get(key: string): Promise<P | undefined> {
    return this.lru.get(key);
  }

  async getMany(keys: readonly string[]): Promise<(P | undefined)[]> {
    return keys.map((k) => this.lru.get(k));
  }

  /** Synchronous write, for the store's fast path. */
  put(key: string, value: P, ttlMs: number): void {
    if (this.shape.size(value) > this.lru.maxSize) {
      // Larger than the whole budget: lru-cache would refuse it; drop any older value instead.
      this.lru.delete(key);
      return;
    }
    this.lru.set(key, value, { ttl: ttlMs > 0 ? ttlMs : undefined });
  }

  async set(key: string, value: P, ttlMs: number): Promise<void> {
    this.put(key, value, ttlMs);
  }

  async setMany(entries: readonly TierWrite<P>[]): Promise<void> {
    for (const e of entries) this.put(e.key, e.value, e.ttlMs);
  }

  async add(key: string, value: P, ttlMs: number): Promise<boolean> {
    if (this.lru.has(key)) return false;
    this.put(key, value, ttlMs);
    return true;
  }

  async deleteIf(key: string, expected: P): Promise<boolean> {
    const current = this.lru.get(key);
    if (current === undefined || !this.shape.equals(current, expected)) return false;
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
    const current = this.shape.counter(this.lru.get(key));
    if (Number.isNaN(current))
      throw new TypeError(`${this.name}: value at this key is not a counter`);
    // Same floor as memcached: counters are unsigned.
    const next = Math.max(0, current + by);
    this.put(key, this.shape.makeCounter(next, 0), ttlMs);
    return next;
  }

  async close(): Promise<void> {
    this.lru.clear();
  }
}
