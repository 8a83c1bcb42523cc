import { NotFoundException } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  TieredCache,
  TieredStore,
  type TieredCacheModuleOptions,
  type TierOptions,
} from '../../lib';
import { MODULE_ONLY_OPTIONS } from '../../lib/nest/tiered-cache.options';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import { ManualClock } from '../support/manual-clock';

const servers = testServers();
const keyspace = uniqueName('entries').toLowerCase();
dropKeyspaceAfterAll(keyspace);
const memcached: TierOptions = { type: 'memcached', servers: servers.memcached };
const cassandra: TierOptions = { type: 'cassandra', ...servers.cassandra, keyspace };
const chain: TierOptions[] = [{ type: 'memory' }, memcached, cassandra];

/**
 * What read-through stores, on real servers (issue 18), seen from several instances (a store and
 * service each, as separate processes would have) over one memcached and Cassandra: the entry a
 * factory adapts (TTL, tags, skip), and empty results cached by `cacheEmpty`.
 */
const open: TieredCache[] = [];
let clock: ManualClock;
let namespace: string;

/** An instance over `tiers` with module options `extra`. */
async function instance(
  tiers: TierOptions[],
  extra: Partial<TieredCacheModuleOptions> = {},
): Promise<TieredCache> {
  const options: TieredCacheModuleOptions = { tiers, namespace, clock, ...extra };
  const cache = new TieredCache(new TieredStore(options, MODULE_ONLY_OPTIONS), options);
  await cache.store.connect();
  open.push(cache);
  return cache;
}

beforeEach(() => {
  clock = new ManualClock(Date.now());
  namespace = uniqueName('entries');
});
afterEach(() => Promise.all(open.splice(0).map((c) => c.store.disconnect())));

describe('adaptive entries across instances (real servers)', () => {
  it.each([
    ['memcached and Cassandra', [memcached, cassandra]],
    ['Cassandra alone', [cassandra]],
  ])(
    'over %s: the TTL, tags and skip a factory sets hold in the shared tiers',
    async (_, shared) => {
      const a = await instance([{ type: 'memory' }, ...shared]);
      const b = await instance(shared as TierOptions[]); // no memory: reads the shared tiers
      let calls = 0;
      const options = { ttl: 600_000, tags: ['call-tag'] };
      const product = (id: number) =>
        a.getOrSet(
          `product:${id}`,
          (entry) => {
            calls++;
            if (id === 1) entry.setTtl(20_000); // a short-lived one
            if (id === 2) entry.setTags([`product:${id}`]); // tags of its own
            if (id === 3) entry.skip(); // not kept
            return { id };
          },
          options,
        );
      for (const id of [1, 2, 3, 4]) expect(await product(id)).toEqual({ id });
      expect(calls).toBe(4);
      // Another instance sees what the factory decided.
      const seen = () =>
        Promise.all([1, 2, 3, 4].map((id) => b.get<{ id: number }>(`product:${id}`)));
      expect(await seen()).toEqual([{ id: 1 }, { id: 2 }, undefined, { id: 4 }]);
      clock.advance(20_001); // past the factory's 20 s, far within the call's 10 min
      expect(await seen()).toEqual([undefined, { id: 2 }, undefined, { id: 4 }]);
      // The call's tag no longer covers the entry whose factory chose its own.
      await b.invalidateTags(['call-tag']);
      expect(await seen()).toEqual([undefined, { id: 2 }, undefined, undefined]);
      await b.invalidateTags(['product:2']);
      expect(await seen()).toEqual([undefined, undefined, undefined, undefined]);
    },
    60_000,
  );
});

describe('negative caching across instances (real servers)', () => {
  /** 500 lookups on each instance at once; resolves with what each settled to. */
  function flood<T>(instances: TieredCache[], lookup: (c: TieredCache) => Promise<T>) {
    return Promise.allSettled(
      instances.flatMap((c) => Array.from({ length: 500 }, () => lookup(c))),
    );
  }

  it('1,000 concurrent lookups of a missing id over two instances: 1 origin call, then 1 more after the negative TTL', async () => {
    const a = await instance(chain, { cacheEmpty: { ttl: 2000 } });
    const b = await instance(chain, { cacheEmpty: { ttl: 2000 } });
    let calls = 0;
    const db = async (): Promise<undefined> => {
      calls++;
      await sleep(50);
      return undefined;
    };
    const lookup = (c: TieredCache) => c.getOrSet('user:404', db, { ttl: 600_000 });
    const first = await flood([a, b], lookup);
    expect(first.every((r) => r.status === 'fulfilled' && r.value === undefined)).toBe(true);
    expect(calls).toBe(1);
    // Within the negative TTL: none.
    clock.advance(1500);
    await flood([a, b], lookup);
    expect(calls).toBe(1);
    // Past it: one more for the whole flood.
    clock.advance(1000);
    await flood([a, b], lookup);
    expect(calls).toBe(2);
  }, 60_000);

  it('a thrown NotFoundException: cached across instances, each lookup rejects with it', async () => {
    const cacheEmpty = { ttl: 2000, errors: [NotFoundException] };
    const a = await instance(chain, { cacheEmpty });
    const b = await instance(chain, { cacheEmpty });
    let calls = 0;
    const db = async (): Promise<string> => {
      calls++;
      await sleep(50);
      throw new NotFoundException('no user 404');
    };
    const lookup = (c: TieredCache) => c.getOrSet('user:404', db, { ttl: 600_000 });
    const outcomes = await flood([a, b], lookup);
    for (const o of outcomes) {
      expect(o.status).toBe('rejected');
      const reason = (o as PromiseRejectedResult).reason as Error;
      expect(reason).toBeInstanceOf(NotFoundException);
      expect(reason.message).toBe('no user 404');
    }
    expect(calls).toBe(1);
    // A third instance, memory empty, reads it from the shared tiers.
    const c = await instance(chain, { cacheEmpty });
    await expect(lookup(c)).rejects.toBeInstanceOf(NotFoundException);
    expect(calls).toBe(1);
    expect(await c.get('user:404')).toBeUndefined();
    clock.advance(2500);
    await flood([a, b], lookup);
    expect(calls).toBe(2);
  }, 60_000);
});
