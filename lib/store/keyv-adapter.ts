import { isCachedError } from './cached-error';
import { EventEmitter } from 'node:events';
import { Keyv, type KeyvStoreAdapter, type StoredData } from 'keyv';
import { TieredStore } from './tiered-store';
import { systemClock, type Clock } from '../clock';
import type { CacheRecord } from '../serialization/codec';
import type { TieredStoreOptions } from './tiered-store.options';

/** Keyv's stored-data shape (what Keyv passes to a store when its own serializer is off). */
interface KeyvEnvelope {
  value: unknown;
  expires?: number | null;
}

function unwrap(data: unknown): unknown {
  return data !== null && typeof data === 'object' && 'value' in data
    ? (data as KeyvEnvelope).value
    : data;
}

/**
 * Keyv's view of a record: the value and when it expires for a plain read, as a `Date.now()`
 * epoch (Keyv and cache-manager compare with it; the store may run on an injected clock), or
 * `undefined` for never. So cache-manager's `ttl()`, `wrap(…, refreshThreshold)` and `raw` work.
 */
function toStoredData<Value>(
  record: CacheRecord<Value> | undefined,
  clock: Clock,
): StoredData<Value> | undefined {
  if (record === undefined || isCachedError(record.value)) return undefined;
  const expiry = record.staleAt || record.expiresAt;
  if (expiry === 0) return { value: record.value, expires: undefined };
  // The store found it live: never report it expired (Keyv would delete it from every tier,
  // grace copy included, when a slow read crossed its expiry).
  const now = Date.now();
  return { value: record.value, expires: Math.max(now + (expiry - clock.now()), now + 1) };
}

/**
 * The Keyv face of a {@link TieredStore}: Keyv hands stores `{ value, expires }` envelopes; this
 * adapter stores the bare value (the tiers keep their own expiry) and wraps it again on the way
 * out. So a Keyv / cache-manager on top of it and direct `TieredStore` / `TieredCache` calls read
 * and write the very same entries. Keyv's own serializer must be off (see {@link createTieredKeyv}),
 * or Dates, Maps and BigInts would be flattened to JSON before the store sees them.
 */
export class TieredKeyvAdapter extends EventEmitter implements KeyvStoreAdapter {
  namespace?: string;

  private readonly clock: Clock;

  constructor(readonly store: TieredStore) {
    super();
    this.clock = store.opts.clock ?? systemClock;
    store.on('error', (err) => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
  }

  get opts(): TieredStore['opts'] {
    return this.store.opts;
  }

  async get<Value>(key: string): Promise<StoredData<Value> | undefined> {
    return toStoredData(await this.store.getRecord<Value>(key), this.clock);
  }

  async getMany<Value>(keys: string[]): Promise<Array<StoredData<Value | undefined>>> {
    const records = await this.store.getManyRecords<Value>(keys);
    return records.map((record) => toStoredData(record, this.clock));
  }

  /**
   * Keyv passes no TTL for "never" (it turns `0` into `undefined`) and applies its own default,
   * which {@link createTieredKeyv} sets to the store's: so a missing TTL here means no expiry.
   */
  async set(key: string, data: unknown, ttl?: number): Promise<boolean> {
    return this.store.set(key, unwrap(data), ttl ?? 0);
  }

  async setMany(entries: Array<{ key: string; value: unknown; ttl?: number }>): Promise<void> {
    await this.store.setMany(
      entries.map((e) => ({ key: e.key, value: unwrap(e.value), ttl: e.ttl ?? 0 })),
    );
  }

  delete(key: string): Promise<boolean> {
    return this.store.delete(key);
  }

  deleteMany(keys: string[]): Promise<boolean> {
    return this.store.deleteMany(keys);
  }

  has(key: string): Promise<boolean> {
    return this.store.has(key);
  }

  hasMany(keys: string[]): Promise<boolean[]> {
    return this.store.hasMany(keys);
  }

  clear(): Promise<void> {
    return this.store.clear();
  }

  /**
   * The store's live entries (see `TieredStore.iterate`) as Keyv's iterator reads them:
   * `[key, { value, expires }]`. {@link createTieredKeyv} makes it the Keyv's `iterator()`.
   * (Not named `iterator`: Keyv 5 takes an adapter's `iterator` only for the backends it knows,
   * by `opts.dialect` or `opts.url`, which this adapter has not.)
   */
  async *entries<Value>(): AsyncGenerator<[key: string, data: StoredData<Value>]> {
    for await (const [key, record] of this.store.iterateRecords<Value>())
      yield [key, toStoredData(record, this.clock)!];
  }

  disconnect(): Promise<void> {
    return this.store.disconnect();
  }
}

/**
 * The one Keyv path: a Keyv over a tiered store (or over a new one built from `options`), set up
 * so that values keep their exact types and every entry is shared with direct store calls and
 * `TieredCache` under the same key: `createCache({ stores: [createTieredKeyv(store)] })`. Its
 * `iterator()` lists the store's live entries where the store can (see `TieredStore.iterate`).
 */
export function createTieredKeyv(store: TieredStore | TieredStoreOptions = {}): Keyv {
  const tiered = store instanceof TieredStore ? store : new TieredStore(store);
  const adapter = new TieredKeyvAdapter(tiered);
  const keyv = new Keyv({
    store: adapter,
    serialize: undefined,
    deserialize: undefined,
    namespace: undefined,
    useKeyPrefix: false,
    // Keyv's default TTL is the store's; `set(k, v, 0)` then reaches the store as "never".
    ttl: tiered.opts.ttl || undefined,
    // Bad input (an empty key, a function in a value) rejects, as it does on TieredCache.
    throwOnErrors: true,
  });
  // Keyv wires `iterator()` by itself only for adapters it recognizes: through its own
  // generateIterator, so it behaves as it does over those (expired entries skipped).
  keyv.iterator = keyv.generateIterator(() => adapter.entries());
  return keyv;
}
