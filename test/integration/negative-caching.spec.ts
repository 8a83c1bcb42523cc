import { NotFoundException } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  TieredCache,
  TieredStore,
  type CacheEmptyOptions,
  type TieredCacheModuleOptions,
  type TierOptions,
} from '../../lib';
import { MODULE_ONLY_OPTIONS } from '../../lib/nest/tiered-cache.options';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import { ManualClock } from '../support/manual-clock';

const servers = testServers();
const keyspace = uniqueName('negative').toLowerCase();
dropKeyspaceAfterAll(keyspace);
const chain: TierOptions[] = [
  { type: 'memory' },
  { type: 'memcached', servers: servers.memcached },
  { type: 'cassandra', ...servers.cassandra, keyspace },
];

/**
 * Negative caching on real servers (issue 18): two instances (a store and service each, as two
 * processes would have) over one memcached and Cassandra, a lookup of a missing id flooding both.
 */
describe('negative caching across instances (real servers)', () => {
  const open: TieredCache[] = [];
  let clock: ManualClock;
  let namespace: string;

  async function instance(cacheEmpty: CacheEmptyOptions): Promise<TieredCache> {
    const options: TieredCacheModuleOptions = { tiers: chain, namespace, clock, cacheEmpty };
    const cache = new TieredCache(new TieredStore(options, MODULE_ONLY_OPTIONS), options);
    await cache.store.connect();
    open.push(cache);
    return cache;
  }

  beforeEach(() => {
    clock = new ManualClock(Date.now());
    namespace = uniqueName('negative');
  });
  afterEach(() => Promise.all(open.splice(0).map((c) => c.store.disconnect())));

  /** 500 lookups on each instance at once; resolves with what each settled to. */
  function flood<T>(instances: TieredCache[], lookup: (c: TieredCache) => Promise<T>) {
    return Promise.allSettled(
      instances.flatMap((c) => Array.from({ length: 500 }, () => lookup(c))),
    );
  }

  it('1,000 concurrent lookups of a missing id over two instances: 1 origin call, then 1 more after the negative TTL', async () => {
    const a = await instance({ ttl: 2000 });
    const b = await instance({ ttl: 2000 });
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
    const a = await instance(cacheEmpty);
    const b = await instance(cacheEmpty);
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
    const c = await instance(cacheEmpty);
    await expect(lookup(c)).rejects.toBeInstanceOf(NotFoundException);
    expect(calls).toBe(1);
    expect(await c.get('user:404')).toBeUndefined();
    clock.advance(2500);
    await flood([a, b], lookup);
    expect(calls).toBe(2);
  }, 60_000);
});
