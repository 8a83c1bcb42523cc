import 'reflect-metadata';
import type { DynamicModule } from '@nestjs/common';
import { CACHE_MANAGER, CacheModule } from '@nestjs/cache-manager';
import { Test, type TestingModule } from '@nestjs/testing';
import { createCache, type Cache, type CreateCacheOptions } from 'cache-manager';
import { Keyv } from 'keyv';
import { TieredCacheModule, TieredStore, createTieredKeyv, type TierOptions } from '../../lib';
import { testServers, uniqueName } from '../harness/env';
import { eventually } from '../support/eventually';

const servers = testServers();
const keyspace = uniqueName('cachemanager').toLowerCase();
const memcached: TierOptions = { type: 'memcached', servers: servers.memcached };
const cassandra: TierOptions = { type: 'cassandra', ...servers.cassandra, keyspace };

/**
 * Slack for expiry checks (the store's clock may be read a little before or after ours on a busy
 * machine); the TTLs compared are far further apart than this.
 */
const SLACK_MS = 1_000;
/** How long a polled condition may take, however busy the machine is. */
const POLL_MS = 15_000;

/** cache-manager's default store: a Keyv over a Map, serialization off (as `createCache()` makes it). */
function defaultKeyv(): Keyv {
  const keyv = new Keyv();
  keyv.serialize = undefined;
  keyv.deserialize = undefined;
  return keyv;
}

/** Every event of these kinds that `cache` emits, in order. */
function record(cache: Cache, ...kinds: string[]): Array<[string, unknown]> {
  const seen: Array<[string, unknown]> = [];
  const on = cache.on as unknown as (event: string, listener: (data?: unknown) => void) => void;
  for (const kind of kinds) on(kind, (data) => seen.push([kind, data]));
  return seen;
}

/** A promise and the function that resolves it: holds a factory until the test lets it go. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open = () => {};
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

describe('cache-manager over the tiered store (real servers)', () => {
  const open: TieredStore[] = [];
  let namespace: string;

  /** A fresh Keyv over a new store on `tiers`, in this test's namespace. */
  function tieredKeyv(tiers: TierOptions[]): Keyv {
    const store = new TieredStore({ namespace, tiers });
    open.push(store);
    return createTieredKeyv(store);
  }

  beforeEach(() => {
    namespace = uniqueName('cachemanager');
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.disconnect()));
  });

  /**
   * The same assertions over cache-manager's default store (the reference) and over the tiered
   * store: what passes on the first must pass on the others.
   */
  describe.each<[string, () => Keyv]>([
    ["cache-manager's default store (reference)", defaultKeyv],
    ['the memory tier alone', () => tieredKeyv([{ type: 'memory' }])],
    [
      'memory → memcached → Cassandra',
      () => tieredKeyv([{ type: 'memory' }, memcached, cassandra]),
    ],
  ])('%s', (_, keyv) => {
    const cache = (options: CreateCacheOptions = {}) =>
      createCache({ stores: [keyv()], ...options });

    it('set, get and del: their values and their events; del resolves true, found or not', async () => {
      const c = cache();
      const events = record(c, 'set', 'get', 'del');
      const value = { id: 1, at: new Date(5) };
      expect(await c.set('k', value, 60_000)).toBe(value);
      expect(await c.get('k')).toEqual(value);
      expect(await c.get('missing')).toBeUndefined(); // a miss emits nothing
      expect(await c.del('k')).toBe(true);
      expect(await c.get('k')).toBeUndefined();
      expect(await c.del('k')).toBe(true);
      expect(events).toEqual([
        ['set', { key: 'k', value, store: 'primary' }],
        ['set', { key: 'k', value }],
        ['get', { key: 'k', value, store: 'primary' }],
        ['del', { key: 'k' }],
        ['del', { key: 'k' }],
      ]);
    });

    it('ttl(key): the expiry (epoch ms) of an entry with a TTL, undefined without one or a key', async () => {
      const c = cache();
      const since = Date.now();
      await c.set('k', 'v', 60_000);
      const expires = await c.ttl('k');
      expect(expires).toBeGreaterThanOrEqual(since + 60_000 - SLACK_MS);
      expect(expires).toBeLessThanOrEqual(Date.now() + 60_000 + SLACK_MS);
      await c.set('forever', 'v');
      expect(await c.ttl('forever')).toBeUndefined();
      expect(await c.ttl('missing')).toBeUndefined();
    });

    it('a 100 ms TTL: the entry is gone after it (polled), and wrap computes again', async () => {
      const c = cache();
      await c.set('short', 'v', 100);
      expect(await eventually(async () => (await c.get('short')) === undefined, POLL_MS)).toBe(
        true,
      );
      let calls = 0;
      await c.wrap('wrapped', async () => ++calls, 100);
      expect(
        await eventually(
          async () => (await c.wrap('wrapped', async () => ++calls, 100)) > 1,
          POLL_MS,
        ),
      ).toBe(true);
    });

    it('mset, mget, mdel and their events', async () => {
      const c = cache();
      const events = record(c, 'mset', 'mget', 'mdel');
      const list: Array<{ key: string; value: unknown; ttl?: number }> = [
        { key: 'a', value: 1, ttl: 60_000 },
        { key: 'b', value: { value: 'an object with a value field' } },
      ];
      expect(await c.mset(list)).toEqual(list);
      expect(await c.mget(['a', 'missing', 'b'])).toEqual([1, undefined, list[1].value]);
      expect(await c.mdel(['a', 'b'])).toBe(true);
      expect(await c.mget(['a', 'b'])).toEqual([undefined, undefined]);
      expect(events).toEqual([
        ['mset', { list }],
        ['mget', { keys: ['a', 'missing', 'b'], values: [1, undefined, list[1].value] }],
        ['mdel', { keys: ['a', 'b'] }],
        ['mget', { keys: ['a', 'b'], values: [undefined, undefined] }],
      ]);
    });

    it('wrap: one call of the function for concurrent callers, then the cached value', async () => {
      const c = cache();
      let calls = 0;
      const fn = async () => ({ n: ++calls });
      const first = await Promise.all(Array.from({ length: 10 }, () => c.wrap('w', fn, 60_000)));
      expect(first.every((v) => v.n === 1)).toBe(true);
      expect(await c.wrap('w', fn, 60_000)).toEqual({ n: 1 });
      expect(calls).toBe(1);
    });

    it('wrap(…, { raw: true }): the value and its expiry, computed or cached', async () => {
      const c = cache();
      const since = Date.now();
      const computed = await c.wrap('r', async () => 'v', { ttl: 60_000, raw: true });
      const cached = await c.wrap('r', async () => 'other', { ttl: 60_000, raw: true });
      for (const raw of [computed, cached]) {
        expect(raw?.value).toBe('v');
        expect(raw?.expires).toBeGreaterThanOrEqual(since + 60_000 - SLACK_MS);
        expect(raw?.expires).toBeLessThanOrEqual(Date.now() + 60_000 + SLACK_MS);
      }
    });

    // The entry lives 10 s; any wrap more than 200 ms after it was written finds less than the
    // 9 800 ms threshold left, so the polling below reaches the refresh without timing anything.
    it.each<[string, (c: Cache, fn: () => Promise<string>) => Promise<string>]>([
      ['a number threshold', (c, fn) => c.wrap('key', fn, 10_000, 9_800)],
      [
        'a function threshold (of the cached value)',
        (c, fn) => c.wrap('key', fn, 10_000, (value: string) => (value === 'old' ? 9_800 : 0)),
      ],
      ['the options form', (c, fn) => c.wrap('key', fn, { ttl: 10_000, refreshThreshold: 9_800 })],
    ])(
      'wrap with %s: refreshes in the background, once, and emits refresh with the new value',
      async (_, wrap) => {
        const c = cache();
        const refreshes = record(c, 'refresh');
        expect(await wrap(c, async () => 'old')).toBe('old');
        const release = gate();
        let calls = 0;
        const refresh = async () => {
          calls++;
          await release.opened;
          return 'new';
        };
        // Until the refresh is let go, every caller gets the cached value at once.
        expect(
          await eventually(async () => {
            expect(await wrap(c, refresh)).toBe('old');
            return calls > 0;
          }, POLL_MS),
        ).toBe(true);
        expect(await wrap(c, refresh)).toBe('old');
        expect(calls).toBe(1); // one refresh in flight, shared
        const since = Date.now();
        release.open();
        expect(await eventually(() => refreshes.length > 0, POLL_MS)).toBe(true);
        expect(refreshes[0]).toEqual(['refresh', { key: 'key', value: 'new' }]);
        expect(await c.get('key')).toBe('new');
        expect(await c.ttl('key')).toBeGreaterThanOrEqual(since + 10_000 - SLACK_MS);
      },
    );

    it('wrap: a refresh that fails emits refresh with the error and keeps the cached value', async () => {
      const c = cache();
      const refreshes = record(c, 'refresh');
      await c.wrap('key', async () => 'old', 10_000, 9_800);
      const failure = new Error('origin down');
      const failing = async (): Promise<string> => {
        throw failure;
      };
      expect(
        await eventually(async () => {
          expect(await c.wrap('key', failing, 10_000, 9_800)).toBe('old');
          return refreshes.length > 0;
        }, POLL_MS),
      ).toBe(true);
      expect(refreshes[0]).toEqual(['refresh', { key: 'key', value: 'old', error: failure }]);
      expect(await c.get('key')).toBe('old');
    });

    it.each([
      [true, 'new'],
      [false, 'old'],
    ])(
      'refreshAllStores: %s: a refresh found in this store also writes the next one: %s',
      async (refreshAllStores, inSecond) => {
        const second = defaultKeyv();
        const c = createCache({ stores: [keyv(), second], refreshAllStores });
        const refreshes = record(c, 'refresh');
        await c.wrap('key', async () => 'old', 10_000, 9_800); // a miss: written to both stores
        expect(
          await eventually(async () => {
            await c.wrap('key', async () => 'new', 10_000, 9_800);
            return refreshes.length > 0;
          }, POLL_MS),
        ).toBe(true);
        expect(refreshes[0]).toEqual(['refresh', { key: 'key', value: 'new' }]);
        expect(await c.stores[0].get('key')).toBe('new');
        expect(await second.get('key')).toBe(inSecond);
      },
    );

    it('clear: every entry gone, and the clear event', async () => {
      const c = cache();
      const events = record(c, 'clear');
      await c.mset([
        { key: 'a', value: 1 },
        { key: 'b', value: 2 },
      ]);
      expect(await c.clear()).toBe(true);
      expect(await c.mget(['a', 'b'])).toEqual([undefined, undefined]);
      expect(events).toEqual([['clear', undefined]]);
    });
  });

  describe.each<[string, () => DynamicModule]>([
    [
      "@nestjs/cache-manager's CacheModule (reference)",
      () => CacheModule.register({ ttl: 60_000 }),
    ],
    [
      'TieredCacheModule, the memory tier',
      () => TieredCacheModule.register({ namespace, ttl: 60_000 }),
    ],
    [
      'TieredCacheModule, memory → memcached → Cassandra',
      () =>
        TieredCacheModule.register({
          namespace,
          ttl: 60_000,
          tiers: [{ type: 'memory' }, memcached, cassandra],
        }),
    ],
  ])('CACHE_MANAGER of %s, register({ ttl: 60_000 })', (_, module) => {
    let moduleRef: TestingModule;
    let cache: Cache;

    beforeEach(async () => {
      moduleRef = await Test.createTestingModule({ imports: [module()] }).compile();
      await moduleRef.init();
      cache = moduleRef.get<Cache>(CACHE_MANAGER);
    });

    afterEach(() => moduleRef.close());

    /** Asserts that `expires` is 60 s after `since` (within {@link SLACK_MS}). */
    const expectModuleTtl = (expires: number | undefined, since: number) => {
      expect(expires).toBeGreaterThanOrEqual(since + 60_000 - SLACK_MS);
      expect(expires).toBeLessThanOrEqual(Date.now() + 60_000 + SLACK_MS);
    };

    it("set, mset and wrap without a TTL of their own take the module's", async () => {
      const since = Date.now();
      await cache.set('set', 1);
      await cache.mset([{ key: 'mset', value: 2 }]);
      await cache.wrap('wrap', async () => 3);
      for (const key of ['set', 'mset', 'wrap']) expectModuleTtl(await cache.ttl(key), since);
    });

    it('wrap(…, { raw: true }) without a TTL: the expiry of a new entry and of a cached one', async () => {
      const since = Date.now();
      const computed = await cache.wrap('raw', async () => 'v', { raw: true });
      const cached = await cache.wrap('raw', async () => 'other', { raw: true });
      expect([computed?.value, cached?.value]).toEqual(['v', 'v']);
      expectModuleTtl(computed?.expires ?? undefined, since);
      expectModuleTtl(cached?.expires ?? undefined, since);
    });
  });

  describe('what only a shared store does', () => {
    it.each<[string, TierOptions[]]>([
      ['memcached', [memcached]],
      ['Cassandra', [cassandra]],
      ['memory → memcached → Cassandra', [{ type: 'memory' }, memcached, cassandra]],
    ])(
      'ttl(key) on another instance, answered by %s, is the expiry the writer set',
      async (_, readerTiers) => {
        const writer = createCache({
          stores: [tieredKeyv([{ type: 'memory' }, memcached, cassandra])],
        });
        const since = Date.now();
        await writer.set('k', 'v', 90_000);
        const written = await writer.ttl('k');
        const reader = createCache({ stores: [tieredKeyv(readerTiers)] });
        const expires = await reader.ttl('k');
        expect(expires).toBeGreaterThanOrEqual(since + 90_000 - SLACK_MS);
        expect(Math.abs(expires! - written!)).toBeLessThanOrEqual(SLACK_MS);
      },
    );

    it('a refresh made by one instance is what another reads', async () => {
      const tiers: TierOptions[] = [{ type: 'memory', ttl: 1 }, memcached, cassandra];
      const a = createCache({ stores: [tieredKeyv(tiers)] });
      const b = createCache({ stores: [tieredKeyv(tiers)] });
      const refreshes = record(a, 'refresh');
      await a.wrap('key', async () => 'old', 10_000, 9_800);
      expect(await b.get('key')).toBe('old');
      expect(
        await eventually(async () => {
          await a.wrap('key', async () => 'new', 10_000, 9_800);
          return refreshes.length > 0;
        }, POLL_MS),
      ).toBe(true);
      expect(await eventually(async () => (await b.get('key')) === 'new', POLL_MS)).toBe(true);
    });
  });
});
