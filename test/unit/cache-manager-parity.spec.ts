// cache-manager over the tiered store behaves as over its default store, where they differed.
import { createCache } from 'cache-manager';
import { Keyv } from 'keyv';
import { TieredStore, createTieredKeyv } from '../../lib';
import { ManualClock } from '../support/manual-clock';
import { MapTier } from '../support/map-tier';

function defaultCache(ttl?: number) {
  const keyv = new Keyv();
  keyv.serialize = undefined;
  keyv.deserialize = undefined;
  return createCache({ stores: [keyv], ttl });
}

describe('cache-manager over the tiered store vs over its default store', () => {
  // 1. lib/store/keyv-adapter.ts: Keyv turns a TTL of 0 into `undefined` before calling the
  //    adapter (keyv/dist/index.js, set() and setMany(): `if (data.ttl === 0) data.ttl = void 0`),
  //    so the adapter cannot tell "0 = never" from "none given" and the store applies its `ttl`.
  it('set(k, v, 0) never expires, whatever the default ttl', async () => {
    const reference = defaultCache(60_000);
    const tiered = createCache({
      stores: [createTieredKeyv(new TieredStore({ ttl: 60_000 }))],
      ttl: 60_000, // as TieredCacheModule now builds CACHE_MANAGER
    });
    for (const cache of [reference, tiered]) {
      await cache.set('k', 'v', 0);
      expect(await cache.ttl('k')).toBeUndefined();
    }
  });

  // 2. lib/tiers/create-tier.ts (defaultCap = MEMORY_DEFAULTS.ttl, 5 000 ms): the memory tier
  //    caps every entry at 5 s even when it is the only tier, so TieredCacheModule.register()
  //    keeps nothing longer than 5 s (CacheModule.register() keeps it for its TTL), and ttl()
  //    reports the record's 60 s while the entry goes at 5 s.
  it('a memory-only store keeps an entry for its TTL', async () => {
    const clock = new ManualClock();
    const cache = createCache({ stores: [createTieredKeyv(new TieredStore({ clock }))] });
    await cache.set('k', 'v', 60_000);
    await cache.set('forever', 'v');
    clock.advance(5_001);
    expect(await cache.get('k')).toBe('v');
    expect(await cache.get('forever')).toBe('v');
  });

  // 3. lib/store/keyv-adapter.ts toStoredData: `expires = Date.now() + (expiry - clock.now())` is
  //    computed after the read; when the read took longer than the time the entry had left, Keyv
  //    sees it expired and calls delete() (keyv get(): `if (isDataExpired(...)) await
  //    this.delete(key)`), which on this store deletes it from every tier with its lease, grace
  //    copy included.
  it('a read that crosses staleAt neither misses nor deletes the grace copy', async () => {
    const clock = new ManualClock();
    class SlowTier extends MapTier {
      override async get(key: string) {
        const value = await super.get(key);
        clock.advance(10); // the read takes 10 ms
        return value;
      }
    }
    const store = new TieredStore({ clock, tiers: [new SlowTier({ clock })] });
    const cache = createCache({ stores: [createTieredKeyv(store)] });
    await store.setEntry('k', 'v', { ttl: 5, grace: 60_000 });
    expect(await cache.get('k')).toBe('v');
    expect((await store.getEntry('k'))?.value).toBe('v');
  });

  it('rejects bad input as TieredCache does, and stores nothing', async () => {
    const store = new TieredStore();
    const cache = createCache({ stores: [createTieredKeyv(store)] });
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    await expect(cache.set('', 1)).rejects.toThrow('cache key must not be empty');
    await expect(cache.set('f', { f: () => 1 })).rejects.toThrow(/is a function/);
    await expect(cache.set('c', circular)).rejects.toThrow(/circular reference/);
    await expect(cache.set('a\ud800b', 1)).rejects.toThrow(/lone UTF-16 surrogate/);
    await expect(
      cache.mset([
        { key: 'ok', value: 1 },
        { key: '', value: 2 },
      ]),
    ).rejects.toThrow('cache key must not be empty');
    expect(await store.get('f')).toBeUndefined();
    expect(await store.get('c')).toBeUndefined();
    expect(await store.get('ok')).toBeUndefined(); // a batch with a bad key writes nothing
    // The same through Keyv itself.
    const keyv = createTieredKeyv(store);
    await expect(keyv.set('', 1)).rejects.toThrow('cache key must not be empty');
    await expect(keyv.set('g', { g: Symbol('x') })).rejects.toThrow(/is a symbol/);
    expect(await store.get('g')).toBeUndefined();
  });
});
