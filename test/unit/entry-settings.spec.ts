import 'reflect-metadata';
import { Injectable, NotFoundException, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  Cached,
  TieredCache,
  TieredCacheModule,
  cacheEntryContext,
  createTieredKeyv,
  createTieredStore,
  type CacheEntryContext,
  type TieredCacheModuleOptions,
} from '../../lib';
import { InvalidOptionError } from '../../lib/errors';
import { eventually } from '../support/eventually';
import { ManualClock } from '../support/manual-clock';
import { MapTier } from '../support/map-tier';

/** Two cached methods that differ only in their TTL (no herd settings of their own). */
@Injectable()
class Catalog {
  calls = { short: 0, long: 0 };

  @Cached({ ttl: 1000, key: 'short' })
  async short(): Promise<number> {
    return ++this.calls.short;
  }

  @Cached({ ttl: 60_000, key: 'long' })
  async long(): Promise<number> {
    return ++this.calls.long;
  }
}

/** Cached methods that set their entry from what they compute. */
@Injectable()
class Products {
  calls = 0;
  userCalls = 0;

  @Cached({ ttl: 60_000, key: (id: number) => `p:${id}` })
  async find(id: number): Promise<{ id: number; discontinued: boolean; n: number }> {
    const entry = cacheEntryContext();
    const n = ++this.calls;
    await Promise.resolve(); // settings may come after an await
    const product = { id, discontinued: id > 100, n };
    if (product.discontinued) entry.setTtl(500);
    if (id === 0) entry.skip();
    return product;
  }

  @Cached({ key: 'late' })
  async late(): Promise<unknown> {
    await Promise.resolve();
    return cacheEntryContext();
  }

  @Cached({
    key: (id: number) => `u:${id}`,
    cacheEmpty: { ttl: 1000, errors: [NotFoundException] },
  })
  async user(id: number): Promise<string> {
    this.userCalls++;
    await Promise.resolve();
    throw new NotFoundException(`no user ${id}`);
  }
}

describe('the entry settings of @Cached() methods', () => {
  const apps: INestApplication[] = [];
  afterEach(() => Promise.all(apps.splice(0).map((a) => a.close())));

  async function app(options: Partial<TieredCacheModuleOptions> = {}) {
    const clock = new ManualClock();
    const ref = await Test.createTestingModule({
      imports: [TieredCacheModule.forRoot({ tiers: [{ type: 'memory' }], clock, ...options })],
      providers: [Catalog, Products],
    }).compile();
    const nest = ref.createNestApplication({ logger: false });
    await nest.init();
    apps.push(nest);
    return { clock, catalog: nest.get(Catalog), products: nest.get(Products) };
  }

  it('cacheEntryContext(): a method sets its TTL from its result, or skips storing it', async () => {
    const { clock, products } = await app();
    expect((await products.find(7)).n).toBe(1);
    expect((await products.find(700)).n).toBe(2); // discontinued: 500 ms
    expect((await products.find(0)).n).toBe(3); // skipped
    clock.advance(1000);
    expect((await products.find(7)).n).toBe(1);
    expect((await products.find(700)).n).toBe(4);
    expect((await products.find(0)).n).toBe(5);
  });

  it('cacheEntryContext() after the method awaited names the problem', async () => {
    const { products } = await app();
    await expect(products.late()).rejects.toThrow(
      'cacheEntryContext() was called outside a cached computation',
    );
  });

  it('cacheEmpty on a method: a NotFoundException is cached for its ttl and rethrown', async () => {
    const { clock, products } = await app();
    for (let i = 0; i < 3; i++) {
      await expect(products.user(9)).rejects.toBeInstanceOf(NotFoundException);
      await expect(products.user(9)).rejects.toThrow('no user 9');
    }
    expect(products.userCalls).toBe(1);
    clock.advance(1001);
    await expect(products.user(9)).rejects.toBeInstanceOf(NotFoundException);
    expect(products.userCalls).toBe(2);
  });

  it('each decorator stores with its own TTL (decorators without herd settings share none)', async () => {
    const { clock, catalog } = await app();
    expect(await catalog.short()).toBe(1);
    expect(await catalog.long()).toBe(1);
    clock.advance(2000); // past the short TTL, well within the long one
    expect(await catalog.short()).toBe(2);
    expect(await catalog.long()).toBe(1);
    expect(catalog.calls).toEqual({ short: 2, long: 1 });
  });
});

/** A "not found" error of the application's own. */
class MissingError extends Error {
  override readonly name = 'MissingError';
}

/** Caches made by a test, disconnected after it. */
const open: TieredCache[] = [];
afterEach(() => Promise.all(open.splice(0).map((c) => c.store.disconnect())));

/** A cache of memory and an in-process shared tier, on a clock of the test's. */
async function cache(options: ConstructorParameters<typeof TieredCache>[1] = {}) {
  const clock = new ManualClock();
  const store = createTieredStore({
    tiers: [{ type: 'memory' }, new MapTier({ name: 'far', clock })],
    clock,
    ttl: 60_000,
  });
  const c = new TieredCache(store, { clock, ...options });
  await store.connect();
  open.push(c);
  return { c, clock, store };
}

describe('adaptive entries: the factory sets its entry from the value it computed', () => {
  it('setTtl: the entry lives as long as the factory says, not the call', async () => {
    const { c, clock } = await cache();
    let calls = 0;
    const get = () =>
      c.getOrSet(
        'k',
        (entry) => {
          calls++;
          entry.setTtl(500);
          return `v${calls}`;
        },
        { ttl: 60_000 },
      );
    expect(await get()).toBe('v1');
    clock.advance(400);
    expect(await get()).toBe('v1');
    clock.advance(200); // 600 ms: past the factory's 500, far within the call's 60 s
    expect(await get()).toBe('v2');
    expect(calls).toBe(2);
  });

  it('setGrace and stale: the refresh sees the stale value it replaces', async () => {
    const { c, clock } = await cache();
    const seen: unknown[] = [];
    const factory = (value: string) => (entry: CacheEntryContext<string>) => {
      seen.push(entry.stale?.value);
      entry.setGrace(10_000);
      return value;
    };
    expect(await c.lookup('k', factory('v1'), { ttl: 1000 })).toMatchObject({ status: 'MISS' });
    clock.advance(2000); // stale, within the factory's grace (the call has none)
    const stale = await c.lookup('k', factory('v2'), { ttl: 1000 });
    expect(stale).toMatchObject({ value: 'v1', status: 'STALE' });
    expect(await eventually(async () => (await c.get('k')) === 'v2', 10_000)).toBe(true);
    expect(seen).toEqual([undefined, 'v1']);
  });

  it('setTags: the entry carries the tags the factory chose, instead of the call’s', async () => {
    const { c } = await cache();
    await c.getOrSet('k', (entry) => (entry.setTags(['product:7']), 'v'), { tags: ['other'] });
    await c.invalidateTags(['other']);
    expect(await c.get('k')).toBe('v');
    await c.invalidateTags(['product:7']);
    expect(await c.get('k')).toBeUndefined();
  });

  it('skip: the value is returned but not stored', async () => {
    const { c } = await cache();
    let calls = 0;
    const get = () => c.getOrSet('k', (entry) => (entry.skip(), ++calls));
    expect(await get()).toBe(1);
    expect(await get()).toBe(2);
    expect(await c.get('k')).toBeUndefined();
  });

  it('bad settings reject the call naming the setting, and store nothing', async () => {
    const { c } = await cache();
    const bad = c.getOrSet('k', (entry) => (entry.setTtl(-1), 'v'));
    await expect(bad).rejects.toThrow(InvalidOptionError);
    await expect(bad).rejects.toThrow(
      'cache entry context setTtl(ttl): -1 is not a number of milliseconds >= 0',
    );
    await expect(c.getOrSet('k', (entry) => (entry.setTags([''] as never), 'v'))).rejects.toThrow(
      'cache entry context setTags(tags)[0]: must not be empty',
    );
    expect(await c.get('k')).toBeUndefined();
  });

  it('cacheEntryContext() outside a computation names the problem', () => {
    expect(() => cacheEntryContext()).toThrow(
      expect.objectContaining({ code: 'E_NO_ENTRY_CONTEXT' }) as Error,
    );
  });
});

describe('negative caching (cacheEmpty)', () => {
  it.each([
    ['undefined', undefined],
    ['null', null],
  ])('a result of %s is cached for cacheEmpty.ttl, then computed once more', async (_, empty) => {
    const { c, clock } = await cache();
    let calls = 0;
    const get = () =>
      c.getOrSet('user:404', () => (calls++, empty), { ttl: 60_000, cacheEmpty: { ttl: 1000 } });
    expect(await get()).toBe(empty);
    expect(await get()).toBe(empty);
    expect(calls).toBe(1);
    clock.advance(1001);
    expect(await get()).toBe(empty);
    expect(calls).toBe(2);
  });

  it('without cacheEmpty, undefined is never cached', async () => {
    const { c } = await cache();
    let calls = 0;
    await c.getOrSet('k', () => void calls++);
    await c.getOrSet('k', () => void calls++);
    expect(calls).toBe(2);
  });

  it('a named error is cached and rethrown as its class; other errors are not cached', async () => {
    const { c, clock, store } = await cache();
    let calls = 0;
    const options = { cacheEmpty: { ttl: 1000, errors: [MissingError] } };
    const get = (error: Error) =>
      c.getOrSet(
        'user:404',
        () => {
          calls++;
          throw error;
        },
        options,
      );
    await expect(get(new MissingError('no user 404'))).rejects.toThrow('no user 404');
    const again = get(new MissingError('not called'));
    await expect(again).rejects.toBeInstanceOf(MissingError);
    await expect(again).rejects.toThrow('no user 404');
    expect(calls).toBe(1);
    // Plain reads see no value there.
    expect(await c.get('user:404')).toBeUndefined();
    expect(await store.getMany(['user:404'])).toEqual([undefined]);
    expect(await createTieredKeyv(store).get('user:404')).toBeUndefined();
    clock.advance(1001);
    await expect(get(new TypeError('boom'))).rejects.toThrow('boom');
    await expect(get(new TypeError('boom again'))).rejects.toThrow('boom again');
    expect(calls).toBe(3);
  });

  it('the module default applies to every call; a call turns it off with false', async () => {
    const { c } = await cache({ cacheEmpty: { ttl: 1000 } });
    let calls = 0;
    await c.getOrSet('a', () => void calls++);
    await c.getOrSet('a', () => void calls++);
    expect(calls).toBe(1);
    await c.getOrSet('b', () => void calls++, { cacheEmpty: false });
    await c.getOrSet('b', () => void calls++, { cacheEmpty: false });
    expect(calls).toBe(3);
  });

  it.each([
    [{}, 'getOrSet options.cacheEmpty.ttl: is required (ms > 0)'],
    [{ ttl: 0 }, 'getOrSet options.cacheEmpty.ttl: 0 is not a number of milliseconds > 0'],
    [{ ttl: 5, tl: 1 }, 'getOrSet options.cacheEmpty.tl: unknown option (did you mean "ttl"?)'],
    [{ ttl: 5, errors: [String] }, 'getOrSet options.cacheEmpty.errors[0]: must be an Error class'],
    [true, 'getOrSet options.cacheEmpty: must be false or an object { ttl, errors? }, got boolean'],
  ])('%# bad options are an InvalidOptionError naming them', async (cacheEmpty, message) => {
    const { c } = await cache();
    const call = c.getOrSet('k', () => 'v', { cacheEmpty: cacheEmpty as never });
    await expect(call).rejects.toThrow(InvalidOptionError);
    await expect(call).rejects.toThrow(message);
    expect(() => Cached({ cacheEmpty: cacheEmpty as never })).toThrow(
      message.replace('getOrSet options', '@Cached()'),
    );
    expect(() => new TieredCache(c.store, { cacheEmpty: cacheEmpty as never })).toThrow(
      message.replace('getOrSet options.', ''),
    );
  });
});
