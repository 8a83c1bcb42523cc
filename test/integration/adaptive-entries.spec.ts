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
const keyspace = uniqueName('adaptive').toLowerCase();
dropKeyspaceAfterAll(keyspace);
const memcached: TierOptions = { type: 'memcached', servers: servers.memcached };
const cassandra: TierOptions = { type: 'cassandra', ...servers.cassandra, keyspace };

/**
 * Adaptive entries on real servers (issue 18): what a factory sets through its entry context
 * (TTL, tags, skip) is what every tier holds, as another instance (an empty memory tier, the
 * shared memcached and Cassandra) sees it.
 */
describe('adaptive entries across instances (real servers)', () => {
  const open: TieredCache[] = [];
  let clock: ManualClock;
  let namespace: string;

  async function instance(tiers: TierOptions[]): Promise<TieredCache> {
    const options: TieredCacheModuleOptions = { tiers, namespace, clock };
    const cache = new TieredCache(new TieredStore(options, MODULE_ONLY_OPTIONS), options);
    await cache.store.connect();
    open.push(cache);
    return cache;
  }

  beforeEach(() => {
    clock = new ManualClock(Date.now());
    namespace = uniqueName('adaptive');
  });
  afterEach(() => Promise.all(open.splice(0).map((c) => c.store.disconnect())));

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
