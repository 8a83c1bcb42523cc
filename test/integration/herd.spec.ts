import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CacheTimeoutError,
  TieredCache,
  TieredStore,
  type HerdOptions,
  type TieredCacheModuleOptions,
  type TierOptions,
} from '../../lib';
import { MODULE_ONLY_OPTIONS } from '../../lib/nest/tiered-cache.options';
import { testServers, uniqueName } from '../harness/env';
import { eventually } from '../support/eventually';
import { ManualClock } from '../support/manual-clock';

const servers = testServers();
const keyspace = uniqueName('herd').toLowerCase();
const memory: TierOptions = { type: 'memory' };
const memcached: TierOptions = { type: 'memcached', servers: servers.memcached };
const cassandra: TierOptions = { type: 'cassandra', ...servers.cassandra, keyspace };
const chain = [memory, memcached, cassandra];

/**
 * A factory that counts its calls (the origin the cache protects). It takes `delayMs`, or with
 * `'held'` until the test calls `release()`: a computation that is still running, however busy
 * the machine, while the test acts.
 */
function origin<T>(value: (call: number) => T, delayMs: number | 'held' = 50) {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const o = {
    calls: 0,
    finished: 0,
    release: () => open(),
    fn: async (): Promise<T> => {
      const call = ++o.calls;
      await (delayMs === 'held' ? gate : sleep(delayMs));
      o.finished++;
      return value(call);
    },
  };
  return o;
}

describe('read-through herd protection (real servers)', () => {
  const open: TieredCache[] = [];
  let clock: ManualClock;
  let namespace: string;
  let warn: jest.SpiedFunction<Logger['warn']>;

  /**
   * One "instance" of the app: its own store (and memory tier) and service over the shared
   * servers, as a separate process would have.
   */
  async function instance(
    tiers: TierOptions[] = chain,
    herd?: HerdOptions,
    extra: Partial<TieredCacheModuleOptions> = {},
  ): Promise<TieredCache> {
    const options: TieredCacheModuleOptions = { tiers, namespace, clock, herd, ...extra };
    const cache = new TieredCache(new TieredStore(options, MODULE_ONLY_OPTIONS), options);
    await cache.store.connect();
    open.push(cache);
    return cache;
  }

  beforeEach(() => {
    clock = new ManualClock();
    namespace = uniqueName('herd');
    warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
  });

  afterEach(async () => {
    warn.mockRestore();
    await Promise.all(open.splice(0).map((c) => c.store.disconnect()));
  });

  describe('cold keys', () => {
    it('1,000 concurrent getOrSet calls in one process make 1 origin call', async () => {
      const cache = await instance();
      const db = origin(() => ({ id: 7, at: new Date(0) }));
      const results = await Promise.all(
        Array.from({ length: 1000 }, () => cache.getOrSet('product:7', db.fn, { ttl: 60_000 })),
      );
      expect(db.calls).toBe(1);
      expect(new Set(results.map((r) => JSON.stringify(r))).size).toBe(1);
      expect(results[0]).toEqual({ id: 7, at: new Date(0) });
      // Stored in every tier: a fresh instance reads it without calling the origin.
      const other = await instance([memcached]);
      expect(await other.get('product:7')).toEqual({ id: 7, at: new Date(0) });
    });

    it.each([
      ['memcached and Cassandra', chain],
      ['Cassandra as the only shared tier', [memory, cassandra]],
    ])(
      'instances sharing %s make 1 origin call in total (a lease, not only a local flight)',
      async (_name, tiers) => {
        const instances = await Promise.all([1, 2, 3, 4].map(() => instance(tiers)));
        const db = origin((call) => ({ call }), 200);
        const lookups = await Promise.all(
          instances.flatMap((cache) =>
            Array.from({ length: 250 }, () => cache.lookup('cold', db.fn, { ttl: 60_000 })),
          ),
        );
        expect(db.calls).toBe(1);
        expect(lookups.every((l) => (l.value as { call: number }).call === 1)).toBe(true);
        // One instance computed; the others waited for its value in the shared tiers.
        const byStatus = (s: string) => lookups.filter((l) => l.status === s).length;
        expect(byStatus('MISS')).toBe(250);
        expect(byStatus('HIT')).toBe(750);
      },
    );

    it('memory only: one call per process, no shared lease needed', async () => {
      const cache = await instance([memory]);
      const db = origin(() => 'v');
      await Promise.all(Array.from({ length: 500 }, () => cache.getOrSet('k', db.fn)));
      expect(db.calls).toBe(1);
    });

    it('a holder that never finishes delays the others until its lease runs out, then one computes', async () => {
      // The lease lives lockTimeout (whole seconds on the servers' clock, so 1-2 s here).
      const [a, b] = await Promise.all([
        instance(chain, { lockTimeout: 2000 }),
        instance(chain, { lockTimeout: 2000 }),
      ]);
      let release: (() => void) | undefined;
      const hung = a.getOrSet('stuck', () => new Promise<string>((r) => (release = () => r('a'))));
      expect(await eventually(() => release !== undefined, 10_000)).toBe(true); // a holds the lease
      const t0 = performance.now();
      const db = origin(() => 'b');
      const results = await Promise.all(
        Array.from({ length: 50 }, () => b.getOrSet('stuck', db.fn)),
      );
      const waited = performance.now() - t0;
      expect(results.every((r) => r === 'b')).toBe(true);
      expect(db.calls).toBe(1);
      // memcached counts expiry on a clock that ticks once a second, and may be most of a tick
      // behind: a 2 s lease has been seen to end 0.8 s after it was taken. Without the lease,
      // b would compute at once.
      expect(waited).toBeGreaterThanOrEqual(500);
      expect(waited).toBeLessThan(15_000);
      release!();
      expect(await hung).toBe('a');
    });
  });

  describe('grace (stale-while-revalidate)', () => {
    it('serves every caller the stale value at once while one refresh runs, across instances', async () => {
      const [a, b] = await Promise.all([
        instance(chain, { grace: 60_000 }),
        instance(chain, { grace: 60_000 }),
      ]);
      await a.getOrSet('hot', () => ({ v: 1 }), { ttl: 1000 });
      clock.advance(1500);
      expect(await a.get('hot')).toBeUndefined(); // plain reads never see stale values

      const db = origin(() => ({ v: 2 }), 300);
      const lookups = await Promise.all(
        Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).lookup('hot', db.fn, { ttl: 1000 })),
      );
      expect(db.finished).toBe(0); // nobody waited for the refresh
      expect(lookups.every((l) => l.status === 'STALE' && (l.value as { v: number }).v === 1)).toBe(
        true,
      );
      expect(await eventually(async () => (await a.get<{ v: number }>('hot'))?.v === 2, 5000)).toBe(
        true,
      );
      // b's own memory tier picks the refreshed value up too.
      expect(
        await eventually(
          async () => (await b.lookup('hot', db.fn, { ttl: 1000 })).status === 'HIT',
          5000,
        ),
      ).toBe(true);
      expect(db.calls).toBe(1);
    });

    it('after grace the entry is gone and callers wait for the origin', async () => {
      const cache = await instance(chain, { grace: 1000 });
      await cache.getOrSet('k', () => 1, { ttl: 1000 });
      clock.advance(2500);
      const db = origin(() => 2);
      expect(await cache.lookup('k', db.fn, { ttl: 1000 })).toMatchObject({
        value: 2,
        status: 'MISS',
      });
    });

    it('fail-safe: a failing refresh keeps serving the stale value and logs once', async () => {
      const cache = await instance(chain, { grace: 60_000 });
      await cache.getOrSet('k', () => 'old', { ttl: 1000 });
      clock.advance(1500);
      let calls = 0;
      const failing = async (): Promise<string> => {
        calls++;
        throw new Error('database down');
      };
      for (let i = 0; i < 3; i++) {
        const results = await Promise.all(
          Array.from({ length: 20 }, () => cache.lookup('k', failing, { ttl: 1000 })),
        );
        expect(results.every((r) => r.value === 'old' && r.status === 'STALE')).toBe(true);
        await eventually(() => cache['readThrough'].inFlight === 0, 2000);
      }
      expect(calls).toBe(3); // one per round, not one per caller
      const refreshWarnings = warn.mock.calls.filter(([m]) => String(m).includes('database down'));
      expect(refreshWarnings).toHaveLength(1);
      expect(String(refreshWarnings[0][0])).toContain('"k"');
    });

    it('without a stale value the factory error reaches every caller, from one call', async () => {
      const cache = await instance();
      let calls = 0;
      const failing = async (): Promise<string> => {
        calls++;
        await sleep(20);
        throw new Error('database down');
      };
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, () => cache.getOrSet('k', failing)),
      );
      expect(
        results.every((r) => r.status === 'rejected' && /database down/.test(String(r.reason))),
      ).toBe(true);
      expect(calls).toBe(1);
      // Nothing was stored and the lease was released: the next call computes at once.
      expect(await cache.getOrSet('k', () => 'ok')).toBe('ok');
    });

    it('timeout (soft): a caller waits that long for the refresh, then gets the stale value', async () => {
      const cache = await instance(chain, { grace: 60_000, timeout: 100 });
      await cache.getOrSet('k', () => 'old', { ttl: 1000 });
      clock.advance(1500);
      const slow = origin(() => 'new', 400);
      const t0 = performance.now();
      const first = await cache.lookup('k', slow.fn, { ttl: 1000 });
      // Stale, so before the refresh ended; after waiting the timeout for it.
      expect(first).toMatchObject({ value: 'old', status: 'STALE' });
      expect(performance.now() - t0).toBeGreaterThanOrEqual(90);
      // The refresh went on and stored its result.
      expect(await eventually(async () => (await cache.get('k')) === 'new', 3000)).toBe(true);
      await eventually(() => cache['readThrough'].inFlight === 0, 3000);

      clock.advance(1500);
      const fast = origin(() => 'newer', 10);
      expect(await cache.lookup('k', fast.fn, { ttl: 1000 })).toMatchObject({
        value: 'newer',
        status: 'MISS',
      });
    });

    it('hardTimeout rejects a caller with no stale value; the factory still stores its result', async () => {
      const cache = await instance(chain, { hardTimeout: 100 });
      // Rejected, so before the factory's value came (it would have been the answer).
      const slow = origin(() => 'late', 400);
      await expect(cache.getOrSet('k', slow.fn)).rejects.toThrow(CacheTimeoutError);
      await expect(cache.getOrSet('k2', slow.fn, { hardTimeout: 50 })).rejects.toThrow(
        'getOrSet("k2"): no value within hardTimeout 50 ms',
      );
      expect(await eventually(async () => (await cache.get('k')) === 'late', 3000)).toBe(true);
    });
  });

  describe('deletes win over refreshes in flight', () => {
    it.each([
      ['through the same instance', false],
      ['through another instance (the lease is invalidated)', true],
    ])('%s: the value computed before the delete is not written back', async (_name, other) => {
      const a = await instance(chain, { grace: 60_000 });
      const deleter = other ? await instance(chain) : a;
      await a.getOrSet('k', () => 'old', { ttl: 1000 });
      clock.advance(1500);
      const slow = origin(() => 'computed-before-delete', 'held');
      expect((await a.lookup('k', slow.fn, { ttl: 1000 })).status).toBe('STALE');
      // The refresh holds the lease and is computing.
      expect(await eventually(() => slow.calls === 1, 10_000)).toBe(true);
      await deleter.del('k');
      slow.release();
      await eventually(() => a['readThrough'].inFlight === 0, 3000);
      expect(slow.finished).toBe(1);
      expect(await deleter.store.getEntry('k')).toBeUndefined();
      // Nor in the shared tiers (another instance's memory tier keeps its copy up to its cap).
      expect(await a.store.getEntry('k', { scope: 'shared' })).toBeUndefined();
    });

    it('a miss being computed is not stored when deleted meanwhile', async () => {
      const [a, b] = await Promise.all([instance(), instance()]);
      const slow = origin(() => 'v', 'held');
      const pending = a.getOrSet('k', slow.fn);
      expect(await eventually(() => slow.calls === 1, 10_000)).toBe(true);
      await b.del('k');
      slow.release();
      expect(await pending).toBe('v'); // the caller still gets its value
      expect(await a.store.getEntry('k')).toBeUndefined();
    });
  });

  describe('early refresh (XFetch)', () => {
    /** A factory that "takes" 100 ms of the manual clock, so the entry's delta is 100. */
    const timed = (value: string) => {
      const o = { calls: 0 };
      return Object.assign(o, {
        fn: async () => {
          o.calls++;
          clock.advance(100);
          return value;
        },
      });
    };

    it('refreshes a hot entry before it expires, in the background', async () => {
      const cache = await instance(chain, { earlyRefresh: 1e6 });
      const first = timed('v1');
      await cache.getOrSet('k', first.fn, { ttl: 10_000 });
      expect((await cache.store.getEntry('k'))?.delta).toBe(100);
      clock.advance(9000);
      const second = timed('v2');
      // Still fresh: the hit is answered at once, and triggers one refresh.
      expect(await cache.lookup('k', second.fn, { ttl: 10_000 })).toMatchObject({
        value: 'v1',
        status: 'HIT',
      });
      expect(await eventually(async () => (await cache.get('k')) === 'v2', 3000)).toBe(true);
      expect(second.calls).toBe(1);
    });

    it('does not refresh early when off, or for entries without a compute time', async () => {
      const cache = await instance(chain);
      const first = timed('v1');
      await cache.getOrSet('k', first.fn, { ttl: 10_000 });
      await cache.set('plain', 'p', 10_000);
      clock.advance(9000);
      const second = timed('v2');
      await cache.getOrSet('k', second.fn, { ttl: 10_000 });
      await cache.getOrSet('plain', second.fn, { ttl: 10_000, earlyRefresh: 1e6 });
      await sleep(100);
      expect(second.calls).toBe(0);
    });
  });

  describe('the envelope stays out of plain reads and writes', () => {
    it('values written by plain set are hits for getOrSet; counters are untouched', async () => {
      const cache = await instance();
      await cache.set('plain', { a: 1 }, 60_000);
      const db = origin(() => ({ a: 2 }));
      expect(await cache.lookup('plain', db.fn)).toMatchObject({ value: { a: 1 }, status: 'HIT' });
      await cache.increment('n', 5);
      expect(await cache.getOrSet('n', db.fn)).toBe(5);
      expect(db.calls).toBe(0);
    });

    it('getOrSet entries read back with plain get (and through a memcached-only store) until their TTL', async () => {
      const cache = await instance(chain, { grace: 60_000 });
      await cache.getOrSet('k', () => ({ d: new Date(5) }), { ttl: 1000 });
      expect(await cache.get('k')).toEqual({ d: new Date(5) });
      const remote = await instance([memcached]);
      expect(await remote.get('k')).toEqual({ d: new Date(5) });
      clock.advance(1001);
      expect(await cache.get('k')).toBeUndefined();
      expect(await remote.get('k')).toBeUndefined();
      expect(await cache.mget(['k'])).toEqual([undefined]);
    });

    it('rejects bad herd options with the field named', async () => {
      const cache = await instance();
      await expect(cache.getOrSet('k', () => 1, { grace: -1 })).rejects.toThrow(
        'getOrSet options.grace: -1 is not a number of milliseconds >= 0',
      );
      await expect(
        cache.getOrSet('k', () => 1, { earlyRefresh: 'yes' as unknown as boolean }),
      ).rejects.toThrow('getOrSet options.earlyRefresh: yes is not true, false or a beta number');
      expect(() => new TieredCache(new TieredStore({}), { herd: { lockTimeout: NaN } })).toThrow(
        'herd.lockTimeout: NaN is not a number of milliseconds >= 0',
      );
    });
  });
});
