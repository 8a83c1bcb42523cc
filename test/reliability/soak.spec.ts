import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { setTimeout as sleep } from 'node:timers/promises';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import { eventually } from '../support/eventually';
import { appInstances, closeInstances, Load, plan, type AppInstance } from '../support/load';
import { OpenResources } from '../support/open-resources';

/**
 * Reliability soak: mixed load (getOrSet, get, set) from two app instances on the shared test
 * servers, no fault, then a leak check: heap growth over the run (after a full GC), and no socket
 * or timer left once the stores are closed. The long version (CHAOS=1) runs 3 minutes with
 * entries expiring every 20 s, so read-through recomputes them under cluster-wide leases.
 */
const servers = testServers();
const keyspace = uniqueName('rel_soak').toLowerCase();
dropKeyspaceAfterAll(keyspace);
let apps: AppInstance[] = [];
afterAll(() => closeInstances(apps));

const PLAN = plan({
  short: { soakMs: 6000, ttl: 120_000, maxHeapGrowthMb: 32 },
  chaos: { soakMs: 180_000, ttl: 20_000, maxHeapGrowthMb: 32 },
});
const READ_KEYS = 200;

/**
 * A full garbage collection (`--expose-gc` turned on at run time), then the heap in use, MB. Only
 * before and after the load: a full collection of the Jest worker's heap (hundreds of MB) stops
 * the event loop for long enough that tier calls in flight time out, which is not the soak's
 * subject. Samples during the load read the heap without collecting.
 */
function heapAfterGc(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

describe('reliability: soak with a leak check', () => {
  it(
    `${PLAN.soakMs / 1000} s of mixed load: no caller error, no wrong value, bounded origin calls, nothing left behind`,
    async () => {
      const resources = OpenResources.watch();
      await appInstances(
        2,
        {
          namespace: uniqueName('soak'),
          memcached: servers.memcached,
          cassandra: { ...servers.cassandra, keyspace },
        },
        apps,
      );
      const load = new Load({
        instances: apps,
        readKeys: READ_KEYS,
        ttl: PLAN.ttl,
        maxMs: PLAN.soakMs,
      });
      await load.warm();
      const heapBefore = heapAfterGc();
      const heap = [heapBefore];
      load.start();
      // The load stops by itself after soakMs; the heap is sampled ten times meanwhile.
      for (let i = 1; i < 10; i++) {
        await sleep(PLAN.soakMs / 10);
        heap.push(process.memoryUsage().heapUsed / 2 ** 20);
      }
      await load.finished();
      const heapAfter = heapAfterGc();
      heap.push(heapAfter);
      await closeInstances(apps);
      apps = [];
      const clean = await eventually(() => resources.left().length === 0, 15_000);
      const left = resources.left();
      const growth = heapAfter - heapBefore;
      load.report(`soak (${PLAN.soakMs / 1000} s)`, 'no fault', [
        `heap ${heap.map((h) => h.toFixed(0)).join(' → ')} MB (${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MB)`,
        `left behind after close: ${left.length ? left.join(', ') : 'nothing'}`,
        `memcached hit ratio ${load.hitRatio().toFixed(3)}`,
      ]);
      expect(load.errorSamples).toEqual([]);
      expect(load.wrongSamples).toEqual([]);
      expect(load.counts.errors).toBe(0);
      expect(load.counts.wrong).toBe(0);
      expect(load.counts.calls).toBeGreaterThan(200);
      // A key is computed again only once its entry is stale, at least a TTL after the last time,
      // by one instance (the cluster-wide lease): at most floor(elapsed / ttl) + 1 times, plus a
      // little slack for a lease that timed out on a busy machine (without leases: twice that).
      // A tier call that timed out (a stalled machine) may cost a read-through one origin call on
      // each instance, so each tier error allows two more.
      const windows = Math.floor(load.now() / PLAN.ttl) + 1;
      expect(load.counts.origin).toBeGreaterThanOrEqual(READ_KEYS);
      expect(load.counts.origin).toBeLessThanOrEqual(
        READ_KEYS * windows + READ_KEYS / 20 + 2 * load.tierErrors,
      );
      expect(Math.max(...load.originPerKey.values())).toBeLessThanOrEqual(windows + 1);
      expect(growth).toBeLessThan(PLAN.maxHeapGrowthMb);
      expect(left).toEqual([]);
      expect(clean).toBe(true);
    },
    120_000 + PLAN.soakMs,
  );
});
