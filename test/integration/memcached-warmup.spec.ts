import { KeyBuilder, TieredCache, TieredStore, type TieredCacheModuleOptions } from '../../lib';
import { MODULE_ONLY_OPTIONS } from '../../lib/nest/tiered-cache.options';
import type { MemcachedTierOptions } from '../../lib/tiers/memcached/memcached.options';
import { MemcachedTier } from '../../lib/tiers/memcached/memcached.tier';
import { testServers, uniqueName } from '../harness/env';
import type { MemcachedNode } from '../harness/memcached';
import { ElastiCacheEndpoint } from '../support/elasticache-endpoint';
import { eventually } from '../support/eventually';
import { ManualClock } from '../support/manual-clock';
import { MemcachedTestbed, currConnections } from '../support/memcached';

/**
 * Warm scale-out (the memcached tier's `warmup`), on real memcached processes behind a test
 * ElastiCache configuration endpoint, with memcached as the store's only tier: nothing else can
 * hide a miss, so every miss that is not warmed is an origin call.
 */

const SERVERS = testServers().memcached;
const INTERVAL = 100;
const KEYS = 2000;
const TTL = 600_000;
const WARMUP = 60_000;

const bed = new MemcachedTestbed();
afterAll(() => bed.close());

/** An app instance: a store whose only tier is memcached found through `endpoint`, and its cache. */
async function app(endpoint: ElastiCacheEndpoint, options: Partial<MemcachedTierOptions> = {}) {
  const clock = new ManualClock(Date.now());
  const namespace = uniqueName('warm');
  const config: TieredCacheModuleOptions = {
    namespace,
    clock,
    tiers: [
      {
        type: 'memcached',
        discovery: { endpoint: endpoint.address, intervalMs: INTERVAL },
        timeout: 2000,
        ...options,
      },
    ],
  };
  const store = bed.store(new TieredStore(config, MODULE_ONLY_OPTIONS));
  await store.connect({ failFast: true });
  const cache = new TieredCache(store, config);
  const tier = (store as unknown as { slots: Array<{ tier: MemcachedTier }> }).slots[0].tier;
  const finals = new KeyBuilder({ namespace });
  finals.generation = store.generation;
  const keys = Array.from({ length: KEYS }, (_, i) => `product:${i}`);
  let originCalls = 0;
  const origin = (key: string) => () => {
    originCalls++;
    return { key, price: key.length };
  };
  return {
    clock,
    store,
    cache,
    tier,
    keys,
    /** The final key of `key`, as the tier sees it. */
    final: (key: string) => finals.build(key),
    get originCalls() {
      return originCalls;
    },
    /** getOrSet of `keys`, `concurrency` at a time; resolves the origin calls it made. */
    async read(list: readonly string[] = keys, concurrency = 16): Promise<number> {
      const before = originCalls;
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < list.length) {
            const key = list[next++];
            const value = await cache.getOrSet(key, origin(key), { ttl: TTL });
            if ((value as { key: string }).key !== key) throw new Error(`${key}: ${String(value)}`);
          }
        }),
      );
      return originCalls - before;
    },
  };
}

async function endpoint(servers: string[]): Promise<ElastiCacheEndpoint> {
  return bed.endpoint(await ElastiCacheEndpoint.start({ version: 1, servers }));
}

/** Publishes `servers` as the next version and waits until the tier uses them. */
async function publish(
  e: ElastiCacheEndpoint,
  version: number,
  servers: string[],
  tier: MemcachedTier,
): Promise<void> {
  e.setConfig(version, servers);
  const same = () => [...tier.servers].sort().join() === [...servers].sort().join();
  expect(await eventually(same, 3000)).toBe(true);
}

describe('memcached warm scale-out (real memcached, discovery, memcached as the only tier)', () => {
  let extra: MemcachedNode;
  beforeAll(async () => {
    extra = await bed.node();
  });

  it('3 → 4 nodes under load: 0 origin calls, moved keys served by their previous owner, then by the new one', async () => {
    const e = await endpoint(SERVERS);
    const a = await app(e);
    expect(await a.read()).toBe(KEYS); // cached once
    expect(await a.read()).toBe(0);
    const before = new Map(a.keys.map((k) => [k, a.tier.serverFor(a.final(k))]));

    // Load: the keys read over and over while discovery adds the 4th node.
    let running = true;
    let passes = 0;
    let originDuringLoad = 0;
    const load = (async () => {
      while (running) {
        originDuringLoad += await a.read(a.keys, 8);
        passes++;
      }
    })();
    try {
      await eventually(() => passes >= 1, 5000);
      e.setConfig(2, [...SERVERS, extra.address]);
      expect(await eventually(() => a.tier.servers.includes(extra.address), 3000)).toBe(true);
      const swapped = passes;
      // Two full passes that began after the swap.
      expect(await eventually(() => passes >= swapped + 3, 30_000)).toBe(true);
    } finally {
      running = false;
      await load;
    }
    await a.tier.warmup.idle();

    const moved = a.keys.filter((k) => a.tier.serverFor(a.final(k)) === extra.address);
    expect(moved.length / KEYS).toBeGreaterThan(0.15);
    expect(moved.length / KEYS).toBeLessThan(0.35);
    // Every moved key came from its previous owner (one of the 3), none from the origin.
    for (const k of moved) expect(SERVERS).toContain(before.get(k));
    expect(originDuringLoad).toBe(0);
    const stats = a.tier.warmup.stats();
    expect(stats.hits).toBeGreaterThanOrEqual(moved.length);
    expect(stats.copies).toBe(moved.length);
    expect(stats.undone).toBe(0);
    expect([...stats.from].sort()).toEqual([...SERVERS].sort());
    expect(stats.retired).toEqual([]);
    console.log(
      `warm scale-out 3 → 4: ${KEYS} keys, ${moved.length} moved, ${stats.hits} warm hits, ` +
        `${stats.copies} copies, ${originDuringLoad} origin calls, ${passes} passes`,
    );

    // Each moved key now lives on the new node, byte for byte what its previous owner holds…
    for (const k of moved) {
      const key = a.final(k);
      const { value: now } = await bed.raw.client(extra.address).get(key);
      const { value: was } = await bed.raw.client(before.get(k)!).get(key);
      expect(now).not.toBeNull();
      expect(now!.equals(was!)).toBe(true);
    }
    // …and is served from there: another pass reads nothing from the previous owners.
    expect(await a.read()).toBe(0);
    expect(a.tier.warmup.stats().hits).toBe(stats.hits);
  });

  it('getMany warms moved keys in one batch per previous owner', async () => {
    const e = await endpoint(SERVERS);
    const a = await app(e);
    const keys = a.keys.slice(0, 300);
    expect(await a.read(keys)).toBe(keys.length);
    await publish(e, 2, [...SERVERS, extra.address], a.tier);
    const moved = keys.filter((k) => a.tier.serverFor(a.final(k)) === extra.address);
    const values = await a.store.getMany<{ key: string }>(keys);
    expect(values.map((v) => v?.key)).toEqual(keys);
    await a.tier.warmup.idle();
    expect(a.tier.warmup.stats()).toMatchObject({ hits: moved.length, copies: moved.length });
    expect(await a.read(keys)).toBe(0);
  });

  it('a key deleted, or overwritten, during warmup is not brought back from its previous owner', async () => {
    const e = await endpoint(SERVERS);
    const a = await app(e);
    const keys = a.keys.slice(0, 200);
    expect(await a.read(keys)).toBe(keys.length);
    const before = new Map(keys.map((k) => [k, a.tier.serverFor(a.final(k))]));
    await publish(e, 2, [...SERVERS, extra.address], a.tier);
    const moved = keys.filter((k) => a.tier.serverFor(a.final(k)) === extra.address);
    const [deleted, overwritten, warmed] = moved;

    expect(await a.store.delete(deleted)).toBe(true); // held by its previous owner only
    await a.store.set(overwritten, { key: overwritten, price: -1 }, TTL);
    // Neither previous owner holds them any more: no warm read can find the older value.
    expect((await bed.raw.client(before.get(deleted)!).get(a.final(deleted))).value).toBeNull();
    expect(
      (await bed.raw.client(before.get(overwritten)!).get(a.final(overwritten))).value,
    ).toBeNull();

    expect(await a.store.get(deleted)).toBeUndefined();
    expect(await a.store.get(overwritten)).toEqual({ key: overwritten, price: -1 });
    expect(await a.store.get(warmed)).toEqual({ key: warmed, price: warmed.length });
    await a.tier.warmup.idle();
    expect(a.tier.warmup.stats()).toMatchObject({ hits: 1, copies: 1, undone: 0 });
    // The overwritten value expiring (or being evicted) on the new owner uncovers nothing older.
    await bed.raw.client(extra.address).delete(a.final(overwritten));
    expect(await a.store.get(overwritten)).toBeUndefined();
    expect(a.tier.warmup.stats().hits).toBe(1);
  });

  it('a warm copy racing a delete by another process does not outlive the delete', async () => {
    const e = await endpoint(SERVERS);
    const a = await app(e);
    const keys = a.keys.slice(0, 100);
    expect(await a.read(keys)).toBe(keys.length);
    const before = new Map(keys.map((k) => [k, a.tier.serverFor(a.final(k))]));
    await publish(e, 2, [...SERVERS, extra.address], a.tier);
    const key = keys.find((k) => a.tier.serverFor(a.final(k)) === extra.address)!;
    const final = a.final(key);
    // The warm read is answered, its copy (ADD, then the check on the previous owner) is in
    // flight when another process deletes the key as the tier does: previous owner, then new one.
    expect(await a.tier.get(final)).toBeDefined();
    await bed.raw.client(before.get(key)!).delete(final);
    await bed.raw.client(extra.address).delete(final);
    await a.tier.warmup.idle();
    const { copies, undone } = a.tier.warmup.stats();
    expect(copies + undone).toBe(1); // whichever came first, the copy is gone
    expect((await bed.raw.client(extra.address).get(final)).value).toBeNull();
    expect(await a.store.get(key)).toBeUndefined();
  });

  it('4 → 3 with the removed node gone: its keys miss once (origin), the others are unaffected', async () => {
    const gone = await bed.node();
    const e = await endpoint([...SERVERS, gone.address]);
    const a = await app(e);
    expect(await a.read()).toBe(KEYS);
    const onGone = a.keys.filter((k) => a.tier.serverFor(a.final(k)) === gone.address);
    expect(onGone.length).toBeGreaterThan(KEYS / 8);
    await gone.stop('SIGKILL');
    await publish(e, 2, SERVERS, a.tier);
    // The removed node is still read during warmup, but it is gone: its first failed read drops it.
    expect(await a.read()).toBe(onGone.length);
    expect(a.tier.warmup.stats()).toMatchObject({ hits: 0, copies: 0 });
    expect(a.tier.warmup.stats().from).not.toContain(gone.address);
    expect(await a.read()).toBe(0);
    console.log(
      `warm scale-in 4 → 3, removed node gone: ${onGone.length} of its keys missed once, ` +
        `${KEYS - onGone.length} others unaffected`,
    );
  });

  it('4 → 3 with the removed node still up: warmed from it; after the warmup its connection is closed and nothing is read from it', async () => {
    const leaving = await bed.node();
    const e = await endpoint([...SERVERS, leaving.address]);
    const a = await app(e);
    const keys = a.keys.slice(0, 600);
    expect(await a.read(keys)).toBe(keys.length);
    const onLeaving = keys.filter((k) => a.tier.serverFor(a.final(k)) === leaving.address);
    const withTier = await currConnections(leaving.address);
    await publish(e, 2, SERVERS, a.tier);
    expect(a.tier.warmup.stats().retired).toEqual([leaving.address]);
    // Half its keys are read during warmup: warmed, no origin call.
    const half = onLeaving.slice(0, Math.ceil(onLeaving.length / 2));
    const rest = onLeaving.slice(half.length);
    expect(await a.read(half)).toBe(0);
    await a.tier.warmup.idle();
    expect(a.tier.warmup.stats()).toMatchObject({ hits: half.length, copies: half.length });
    expect(await currConnections(leaving.address)).toBe(withTier);

    // The warmup ends by the clock: the next read no longer goes to the removed node, whose
    // connection is closed.
    a.clock.advance(WARMUP);
    expect(await a.read(rest)).toBe(rest.length);
    expect(a.tier.warmup.stats()).toMatchObject({ hits: half.length, from: [], retired: [] });
    expect(
      await eventually(async () => (await currConnections(leaving.address)) === withTier - 1, 3000),
    ).toBe(true);
    expect(await a.read(half)).toBe(0); // the warmed ones stay
  });

  it('warmup: 0 turns it off: moved keys miss and go to the origin', async () => {
    const e = await endpoint(SERVERS);
    const a = await app(e, { warmup: 0 });
    const keys = a.keys.slice(0, 400);
    expect(await a.read(keys)).toBe(keys.length);
    await publish(e, 2, [...SERVERS, extra.address], a.tier);
    const moved = keys.filter((k) => a.tier.serverFor(a.final(k)) === extra.address);
    expect(moved.length).toBeGreaterThan(0);
    expect(await a.read(keys)).toBe(moved.length);
    expect(a.tier.warmup.stats()).toMatchObject({ hits: 0, copies: 0, from: [] });
  });
});

describe('warmup option', () => {
  const servers = ['127.0.0.1:1'];
  const tierWith = (warmup: unknown) =>
    new MemcachedTier({ type: 'memcached', servers, warmup } as MemcachedTierOptions);
  const storeWith = (warmup: unknown) =>
    new TieredStore({
      tiers: [{ type: 'memory' }, { type: 'memcached', servers, warmup } as MemcachedTierOptions],
    });

  it('rejects values that are not a whole number of ms from 0 to a day, naming tiers[i].warmup', () => {
    expect(() => storeWith(-1)).toThrow(/^tiers\[1\]\.warmup: -1 is not an integer >= 0$/);
    expect(() => storeWith(1.5)).toThrow(/^tiers\[1\]\.warmup: 1\.5 is not an integer >= 0$/);
    expect(() => storeWith('60s')).toThrow(/^tiers\[1\]\.warmup: 60s is not an integer >= 0$/);
    expect(() => storeWith(86_400_001)).toThrow(
      /^tiers\[1\]\.warmup: 86400001 is more than 86400000 ms \(a day\)$/,
    );
    expect(() => tierWith(-5)).toThrow(/^memcached\.warmup: -5 is not an integer >= 0$/);
    expect(() => storeWith({ ms: 1 })).toThrow(/^tiers\[1\]\.warmup: /);
  });

  it('accepts 0, the default and a day', async () => {
    for (const warmup of [0, undefined, 86_400_000]) {
      const tier = tierWith(warmup);
      await tier.close();
    }
  });

  it('a misspelt key is an unknown option', () => {
    expect(
      () =>
        new TieredStore({
          tiers: [{ type: 'memcached', servers, warmUp: 1 } as unknown as MemcachedTierOptions],
        }),
    ).toThrow(/tiers\[0\]\.warmUp: unknown option \(did you mean "warmup"\?\)/);
  });
});
