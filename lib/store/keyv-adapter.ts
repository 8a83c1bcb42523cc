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
  if (record === undefined) return undefined;
  const expiry = record.staleAt || record.expiresAt;
  return {
    value: record.value,
    expires: expiry === 0 ? undefined : Date.now() + (expiry - clock.now()),
  };
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

  async set(key: string, data: unknown, ttl?: number): Promise<boolean> {
    return this.store.set(key, unwrap(data), ttl);
  }

  async setMany(entries: Array<{ key: string; value: unknown; ttl?: number }>): Promise<void> {
    await this.store.setMany(
      entries.map((e) => ({ key: e.key, value: unwrap(e.value), ttl: e.ttl })),
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

  disconnect(): Promise<void> {
    return this.store.disconnect();
  }
}

/**
 * The one Keyv path: a Keyv over a tiered store (or over a new one built from `options`), set up
 * so that values keep their exact types and every entry is shared with direct store calls and
 * `TieredCache` under the same key: `createCache({ stores: [createTieredKeyv(store)] })`.
 */
export function createTieredKeyv(store: TieredStore | TieredStoreOptions = {}): Keyv {
  return new Keyv({
    store: new TieredKeyvAdapter(store instanceof TieredStore ? store : new TieredStore(store)),
    serialize: undefined,
    deserialize: undefined,
    namespace: undefined,
    useKeyPrefix: false,
  });
}
