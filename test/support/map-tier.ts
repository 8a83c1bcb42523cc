import { systemClock, type Clock } from '../../lib/clock';
import { TieredCacheError, ValueTooLargeError } from '../../lib/errors';
import { checkRaised, raisedBytes, readRaised } from '../../lib/tiers/max-register';
import type { Tier, TierCapabilities, TierWrite } from '../../lib/tiers/tier.interface';

export interface MapTierOptions {
  /** Default `map`. */
  name?: string;
  /** TTLs are measured on it; default the system clock. */
  clock?: Clock;
  /**
   * Default: a shared tier with atomic leases and counters that lists its entries, 1 ms TTLs,
   * 250-byte keys.
   */
  capabilities?: Partial<TierCapabilities>;
  /** What it holds; give several tiers one backend to have them share it. Default: its own. */
  backend?: MapBackend;
  /**
   * Writes of larger values reject with a `ValueTooLargeError` (`tooLarge: true`), as a server
   * that refuses them would, whatever `capabilities.maxValueBytes` says. Default: none refused.
   */
  refuseAboveBytes?: number;
}

/** The entries of one or more {@link MapTier}s, as a server would hold them. */
export type MapBackend = Map<string, Held>;

export interface Held {
  value: Buffer;
  /** Epoch ms (on the tier's clock) after which it is gone; 0 = never. */
  expiresAt: number;
}

/**
 * A tier of its own, in process: a `Map` of bytes that says it is shared, with leases and
 * counters. It stands in for no server; the store's unit tests use it (wrapped by a
 * {@link FaultTier}) as a far tier that needs no network. Bytes are copied in and out, as a
 * server would; instances given one {@link MapBackend} share it, as clients of one server do.
 * Counters behave as memcached's: created at `max(by, 0)`, floored at 0, kept as their decimal
 * text; `raise` keeps its number so too.
 */
export class MapTier implements Tier<Buffer> {
  readonly name: string;
  readonly kind = 'map';
  readonly capabilities: TierCapabilities;
  private readonly backend: MapBackend;
  private readonly clock: Clock;
  private readonly refuseAbove: number;
  private closed = false;

  constructor(options: MapTierOptions = {}) {
    this.name = options.name ?? 'map';
    this.clock = options.clock ?? systemClock;
    this.backend = options.backend ?? new Map();
    this.refuseAbove = options.refuseAboveBytes ?? Infinity;
    this.capabilities = {
      local: false,
      leases: 'atomic',
      counters: 'atomic',
      enumerate: true,
      ttlResolutionMs: 1,
      maxKeyBytes: 250,
      ...options.capabilities,
    };
  }

  /** Number of live entries (expired ones are dropped first). */
  /** The payloads it holds (live ones), in insertion order. */
  payloads(): Buffer[] {
    for (const key of [...this.backend.keys()]) this.live(key);
    return [...this.backend.values()].map((e) => e.value);
  }

  get size(): number {
    for (const key of [...this.backend.keys()]) this.live(key);
    return this.backend.size;
  }

  async connect(): Promise<void> {
    this.open();
  }

  async get(key: string): Promise<Buffer | undefined> {
    this.open();
    const held = this.live(key);
    return held && Buffer.from(held.value);
  }

  async getMany(keys: readonly string[]): Promise<(Buffer | undefined)[]> {
    this.open();
    return keys.map((key) => {
      const held = this.live(key);
      return held && Buffer.from(held.value);
    });
  }

  async set(key: string, value: Buffer, ttlMs: number): Promise<void> {
    this.open();
    this.refuse(value);
    this.store(key, value, ttlMs);
  }

  async setMany(entries: readonly TierWrite<Buffer>[]): Promise<void> {
    this.open();
    for (const e of entries) this.refuse(e.value);
    for (const e of entries) this.store(e.key, e.value, e.ttlMs);
  }

  async delete(key: string): Promise<boolean> {
    this.open();
    return this.live(key) !== undefined && this.backend.delete(key);
  }

  async deleteMany(keys: readonly string[]): Promise<boolean> {
    this.open();
    let deleted = false;
    for (const key of keys)
      if (this.live(key) !== undefined && this.backend.delete(key)) deleted = true;
    return deleted;
  }

  async add(key: string, value: Buffer, ttlMs: number): Promise<boolean> {
    this.open();
    if (this.live(key) !== undefined) return false;
    this.store(key, value, ttlMs);
    return true;
  }

  async deleteIf(key: string, expected: Buffer): Promise<boolean> {
    this.open();
    const held = this.live(key);
    if (held === undefined || !held.value.equals(expected)) return false;
    return this.backend.delete(key);
  }

  async increment(key: string, by: number, ttlMs: number): Promise<number> {
    this.open();
    if (!Number.isSafeInteger(by)) throw new RangeError(`${this.name}: by must be a safe integer`);
    const held = this.live(key);
    if (held === undefined) {
      const created = Math.max(by, 0);
      this.store(key, Buffer.from(String(created), 'latin1'), ttlMs);
      return created;
    }
    const text = held.value.toString('latin1');
    if (!/^\d+$/.test(text))
      throw new TypeError(
        `${this.name}: increment of a non-numeric value at ${JSON.stringify(key)}`,
      );
    const next = Math.max(Number(text) + by, 0);
    held.value = Buffer.from(String(next), 'latin1');
    return next;
  }

  /**
   * Max-register, as memcached's: stores `n`'s ASCII digits unless the entry holds a decimal
   * number at least as high (anything else is replaced); storing sets the TTL, finding a number
   * at least as high changes nothing.
   */
  async raise(key: string, n: number, ttlMs: number): Promise<void> {
    this.open();
    checkRaised(this.name, n);
    const held = this.live(key);
    const current = held && readRaised(held.value);
    if (current !== undefined && current >= n) return;
    this.store(key, raisedBytes(n), ttlMs);
  }

  /** The live entries under `prefix`, copied, as they are when the first one is asked for. */
  async *entries(prefix: string): AsyncGenerator<[key: string, value: Buffer]> {
    this.open();
    const keys = [...this.backend.keys()].filter((key) => key.startsWith(prefix));
    const live: [string, Buffer][] = [];
    for (const key of keys) {
      const held = this.live(key);
      if (held !== undefined) live.push([key, Buffer.from(held.value)]);
    }
    yield* live;
  }

  /** This instance is unusable afterwards; what it held stays (as on a server). */
  async close(): Promise<void> {
    this.closed = true;
  }

  private open(): void {
    if (this.closed) throw new TieredCacheError('E_CLOSED', `map tier "${this.name}" is closed`);
  }

  private refuse(value: Buffer): void {
    if (value.length > this.refuseAbove)
      throw new ValueTooLargeError(
        `map tier "${this.name}": a value of ${value.length} bytes is over ${this.refuseAbove}`,
        value.length,
        this.refuseAbove,
      );
  }

  private store(key: string, value: Buffer, ttlMs: number): void {
    const expiresAt = ttlMs > 0 ? this.clock.now() + ttlMs : 0;
    this.backend.set(key, { value: Buffer.from(value), expiresAt });
  }

  /** The entry at `key` unless it expired (then it is dropped). */
  private live(key: string): Held | undefined {
    const held = this.backend.get(key);
    if (held === undefined) return undefined;
    if (held.expiresAt !== 0 && held.expiresAt <= this.clock.now()) {
      this.backend.delete(key);
      return undefined;
    }
    return held;
  }
}
