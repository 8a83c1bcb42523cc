import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  RedisTransport,
  TieredCache,
  createTieredStore,
  type BusEvent,
  type InvalidationTransport,
  type TieredStore,
  type TieredStoreOptions,
  type TransportHandlers,
} from '../../lib';
import { testServers, uniqueName } from '../harness/env';
import { eventually } from '../support/eventually';
import { ManualClock } from '../support/manual-clock';
import { MemcachedTestbed } from '../support/memcached';
import { RedisTestbed, freezeRedis, killRedis, restartRedis, thawRedis } from '../support/redis';

/**
 * The invalidation bus between instances of one namespace (each a store of its own here, as
 * separate processes would be; test/integration/bus-processes.spec.ts runs them as processes),
 * on a real Redis and real memcached.
 */
const servers = testServers();
const redisBed = new RedisTestbed();
const memcachedBed = new MemcachedTestbed();
const stores: TieredStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.disconnect()));
});
afterAll(async () => {
  await memcachedBed.close();
  await redisBed.close();
});

/** A connected store (closed after the test) and the `bus` events it emitted. */
async function instance(
  options: TieredStoreOptions,
): Promise<{ store: TieredStore; events: BusEvent[] }> {
  const store = createTieredStore({
    tiers: [{ type: 'memory' }, { type: 'memcached', servers: servers.memcached }],
    ...options,
  } as TieredStoreOptions);
  stores.push(store);
  const events: BusEvent[] = [];
  store.on('bus', (e: BusEvent) => events.push(e));
  store.on('error', () => undefined);
  await store.connect();
  return { store, events };
}

const busUp = (s: TieredStore) => eventually(() => s.busStats()?.up === true, 15_000);
const memoryHits = (s: TieredStore) => s.stats()[0].hits;
/**
 * Waits until `receiver` got every message `sender` published (a write's own message, arriving
 * after the receiver read the new value, would otherwise drop that copy mid-test).
 */
async function caughtUp(sender: TieredStore, receiver: TieredStore): Promise<void> {
  await sleep(1); // past the tick: the last write's message is published
  const ok = await eventually(() => {
    const sent = sender.busStats()!;
    return sent.inFlight === 0 && receiver.busStats()!.received >= sent.published;
  }, 5000);
  expect(ok).toBe(true);
}

/** A transport that drops the publishes whose numbers (1, 2, …) are in `drop`, passing the rest. */
class DroppingTransport implements InvalidationTransport {
  private n = 0;
  constructor(
    private readonly inner: InvalidationTransport,
    private readonly drop: Set<number>,
  ) {}
  publish(channel: string, payload: Buffer): Promise<void> {
    return this.drop.has(++this.n) ? Promise.resolve() : this.inner.publish(channel, payload);
  }
  subscribe(channel: string, handlers: TransportHandlers): Promise<void> {
    return this.inner.subscribe(channel, handlers);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe('invalidation bus (Redis)', () => {
  it("drops another instance's written and deleted keys from the local tier; without a bus the old value stays", async () => {
    const namespace = uniqueName('bus');
    const bus = { type: 'redis' as const, url: servers.redis.url };
    const a = (await instance({ namespace, bus })).store;
    const b = (await instance({ namespace, bus })).store;
    // No bus; a long memory cap, so that its old copy outlives this test on a slow machine.
    const c = (
      await instance({
        namespace,
        tiers: [
          { type: 'memory', ttl: 600_000 },
          { type: 'memcached', servers: servers.memcached },
        ],
      })
    ).store;
    await Promise.all([busUp(a), busUp(b)]).then((ok) => expect(ok).toEqual([true, true]));

    await a.set('k', 'v1', 60_000);
    await caughtUp(a, b);
    expect(await b.get('k')).toBe('v1');
    expect(await c.get('k')).toBe('v1');
    const hits = memoryHits(b);
    expect(await b.get('k')).toBe('v1');
    expect(memoryHits(b)).toBe(hits + 1); // b now answers from its memory tier

    await a.set('k', 'v2', 60_000);
    expect(await eventually(async () => (await b.get('k')) === 'v2', 5000)).toBe(true);
    // The instance without a bus still serves its memory tier's old copy (for up to its cap).
    expect(await c.get('k')).toBe('v1');

    await a.delete('k');
    expect(await eventually(async () => (await b.get('k')) === undefined, 5000)).toBe(true);
    expect(await c.get('k')).toBe('v1');

    // setMany, deleteMany and increment travel too (read-through writes: the next test).
    await b.get('m1');
    await a.setMany([
      { key: 'm1', value: 1 },
      { key: 'm2', value: 2 },
    ]);
    expect(await b.get('m1')).toBe(1);
    expect(await eventually(async () => (await b.get('m2')) === 2, 5000)).toBe(true);
    await a.deleteMany(['m1', 'm2']);
    expect(
      await eventually(
        async () => (await b.getMany(['m1', 'm2'])).every((v) => v === undefined),
        5000,
      ),
    ).toBe(true);
    await a.increment('n', 5);
    expect(await b.get('n')).toBe(5);
    await a.increment('n', 1);
    expect(await eventually(async () => (await b.get('n')) === 6, 5000)).toBe(true);
    const sent = a.busStats()!;
    expect(sent.publishFailed + sent.dropped).toBe(0);
    expect(b.busStats()!.received).toBeGreaterThanOrEqual(6);
    expect(b.busStats()!.gaps).toBe(0);
  });

  it('a read-through write (getOrSet) travels: the others are told its key', async () => {
    const namespace = uniqueName('busrt');
    const bus = { type: 'redis' as const, url: servers.redis.url };
    const a = (await instance({ namespace, bus })).store;
    const { store: b, events } = await instance({ namespace, bus });
    expect(await Promise.all([busUp(a), busUp(b)])).toEqual([true, true]);
    const cache = new TieredCache(a, {});
    expect(await cache.getOrSet('computed', () => 'v1', { ttl: 60_000 })).toBe('v1');
    await caughtUp(a, b);
    const told = events
      .filter((e) => e.type === 'invalidated')
      .flatMap((e) => e.invalidation?.keys ?? []);
    expect(told).toContain('computed');
    expect(await b.get('computed')).toBe('v1');
  });

  it('a bus on an ioredis client of the app: invalidations travel, and disconnecting leaves the client open', async () => {
    const namespace = uniqueName('busclient');
    const clients = [new Redis(servers.redis.url), new Redis(servers.redis.url)];
    try {
      const [a, b] = [
        (await instance({ namespace, bus: { type: 'redis', client: clients[0] } })).store,
        (await instance({ namespace, bus: { type: 'redis', client: clients[1] } })).store,
      ];
      expect(await Promise.all([busUp(a), busUp(b)])).toEqual([true, true]);
      await a.set('k', 'v1', 60_000);
      await caughtUp(a, b);
      expect(await b.get('k')).toBe('v1');
      await a.set('k', 'v2', 60_000);
      expect(await eventually(async () => (await b.get('k')) === 'v2', 10_000)).toBe(true);
      await Promise.all(stores.splice(0).map((s) => s.disconnect()));
      // The app's clients are the app's: still connected once the stores are gone.
      expect(await Promise.all(clients.map((c) => c.ping()))).toEqual(['PONG', 'PONG']);
    } finally {
      await Promise.all(clients.map((c) => c.quit()));
    }
  });

  it('a write made before connect() (the bus not started yet) still reaches the others', async () => {
    const namespace = uniqueName('busearly');
    const bus = { type: 'redis' as const, url: servers.redis.url };
    // A long memory cap: only the bus can tell b.
    const memcached = { type: 'memcached' as const, servers: servers.memcached };
    const tiers = [{ type: 'memory' as const, ttl: 600_000 }, memcached];
    const b = (await instance({ namespace, bus, tiers })).store;
    expect(await busUp(b)).toBe(true);
    const seed = createTieredStore({
      namespace,
      tiers: [{ type: 'memory' }, { type: 'memcached', servers: servers.memcached }],
    });
    stores.push(seed);
    await seed.set('k', 'v1', 60_000);
    expect(await b.get('k')).toBe('v1'); // in b's memory tier now
    const a = createTieredStore({
      namespace,
      tiers: [{ type: 'memory' }, { type: 'memcached', servers: servers.memcached }],
      // Time enough to open its Redis connection on a busy machine before the first publish.
      bus: { ...bus, timeout: 5000 },
    });
    stores.push(a);
    a.on('error', () => undefined);
    await a.set('k', 'v2', 60_000); // no connect(): the bus starts with this write
    expect(await eventually(async () => (await b.get('k')) === 'v2', 5000)).toBe(true);
  });

  it("an instance's last write before it disconnects still reaches the others", async () => {
    const namespace = uniqueName('busclose');
    const bus = { type: 'redis' as const, url: servers.redis.url };
    const a = (await instance({ namespace, bus })).store;
    const b = (await instance({ namespace, bus })).store;
    expect(await Promise.all([busUp(a), busUp(b)])).toEqual([true, true]);
    await a.set('k', 'v1', 60_000);
    await caughtUp(a, b);
    expect(await b.get('k')).toBe('v1');
    await a.set('k', 'v2', 60_000);
    await a.disconnect(); // the message of that write is still pending in this tick
    expect(await eventually(async () => (await b.get('k')) === 'v2', 5000)).toBe(true);
    expect(b.busStats()!.received).toBe(2);
  });

  it('clear() on one instance reaches the others at once, not at their next generation refresh', async () => {
    const namespace = uniqueName('busclear');
    const bus = { type: 'redis' as const, url: servers.redis.url };
    const tiers = [
      { type: 'memory' as const },
      {
        type: 'cassandra' as const,
        ...servers.cassandra,
        keyspace: uniqueName('bus_ks').toLowerCase(),
      },
    ];
    const a = (await instance({ namespace, bus, tiers, generationRefreshMs: 3_600_000 })).store;
    const b = (await instance({ namespace, bus, tiers, generationRefreshMs: 3_600_000 })).store;
    expect(await Promise.all([busUp(a), busUp(b)])).toEqual([true, true]);
    await a.set('k', 'v', 60_000);
    expect(await b.get('k')).toBe('v');
    const before = b.generation;
    await a.clear();
    expect(a.generation).toBeGreaterThan(before);
    expect(await eventually(() => b.generation === a.generation, 5000)).toBe(true);
    expect(await b.get('k')).toBeUndefined();
  }, 90_000);

  it('a dropped message: the receiver sees the gap, flushes its local tier and says so', async () => {
    const namespace = uniqueName('busgap');
    const url = servers.redis.url;
    const transport = new DroppingTransport(
      await RedisTransport.create({ url, timeoutMs: 1000 }),
      new Set([4]),
    );
    const a = (await instance({ namespace, bus: { transport } })).store;
    const { store: b, events } = await instance({ namespace, bus: { type: 'redis', url } });
    expect(await Promise.all([busUp(a), busUp(b)])).toEqual([true, true]);
    for (const k of ['k1', 'k2', 'k3']) {
      await a.set(k, 'old', 60_000);
      await caughtUp(a, b); // a message each: numbers 1, 2, 3
    }
    expect(b.busStats()!.received).toBe(3);
    for (const k of ['k1', 'k2', 'k3', 'other']) await b.get(k); // b's memory tier holds them
    await b.set('other', 'kept?', 60_000);

    await a.set('k2', 'new', 60_000); // message 4, dropped: b never hears of it
    const sent = () => a.busStats()!.inFlight === 0 && a.busStats()!.pending === 0;
    expect(await eventually(sent, 5000)).toBe(true);
    expect(await b.get('k2')).toBe('old'); // b's stale copy
    await a.set('k3', 'new', 60_000); // delivered, one number after the dropped one
    expect(await eventually(() => events.some((e) => e.type === 'gap'), 5000)).toBe(true);
    expect(b.busStats()!.gaps).toBe(1);
    expect(events.find((e) => e.type === 'gap')!.message).toMatch(
      /missed 1 invalidation message from instance .*local tiers flushed/,
    );
    // Flushed: b reads k2 from memcached again, and gets the new value.
    expect(await b.get('k2')).toBe('new');
    expect(await b.get('k3')).toBe('new');
  });

  it('Redis killed: no caller error, local tiers flushed and capped at degradedTtl; restarted: the bus resumes and the normal cap returns', async () => {
    const node = await redisBed.node();
    const namespace = uniqueName('buskill');
    const clock = new ManualClock();
    const bus = { type: 'redis' as const, url: node.url, degradedTtl: 1000, timeout: 500 };
    const a = (await instance({ namespace, bus })).store;
    const { store: b, events } = await instance({ namespace, bus, clock });
    expect(await Promise.all([busUp(a), busUp(b)])).toEqual([true, true]);
    await a.set('k', 'v1', 600_000);
    await caughtUp(a, b);
    expect(await b.get('k')).toBe('v1');

    await killRedis(node);
    expect(await eventually(() => b.busStats()!.up === false, 10_000)).toBe(true);
    expect(events.map((e) => e.type)).toContain('down');
    expect(events.find((e) => e.type === 'down')!.message).toMatch(/local tiers flushed/);
    // Writes and deletes go on without error while nothing can be published.
    for (let i = 0; i < 100; i++) {
      await expect(a.set(`w${i}`, i, 600_000)).resolves.toBe(true);
      await expect(a.delete(`w${i}`)).resolves.toBe(true);
    }
    // b's memory tier was flushed; what it takes in now lives at most degradedTtl.
    const misses = b.stats()[0].misses;
    expect(await b.get('k')).toBe('v1');
    expect(b.stats()[0].misses).toBe(misses + 1);
    await b.set('d', 'x', 600_000);
    clock.advance(999);
    await sleep(5); // lru-cache reads the clock at most once per ms of real time
    const hits = memoryHits(b);
    expect(await b.get('d')).toBe('x');
    expect(memoryHits(b)).toBe(hits + 1);
    clock.advance(2);
    await sleep(5);
    expect(await b.get('d')).toBe('x'); // from memcached now
    expect(memoryHits(b)).toBe(hits + 1);

    await restartRedis(node);
    expect(await busUp(b)).toBe(true);
    expect(await busUp(a)).toBe(true);
    expect(events.map((e) => e.type)).toContain('up');
    await b.set('n', 'x', 600_000);
    clock.advance(1001);
    await sleep(5);
    const hitsAfter = memoryHits(b);
    expect(await b.get('n')).toBe('x');
    expect(memoryHits(b)).toBe(hitsAfter + 1); // normal cap (5 s) again
    // And invalidations flow again.
    await a.set('k', 'v2', 600_000);
    expect(await eventually(async () => (await b.get('k')) === 'v2', 5000)).toBe(true);
  }, 90_000);

  it('Redis hung (SIGSTOP) for 5 s: writes never wait for the bus; the receiver degrades, then recovers', async () => {
    const node = await redisBed.node();
    const namespace = uniqueName('bushang');
    // A publish waited for would cost a write the bus's timeout: no write may take that long.
    const bus = { type: 'redis' as const, url: node.url, timeout: 2000, maxQueue: 50 };
    const a = (await instance({ namespace, bus })).store;
    const { store: b, events } = await instance({ namespace, bus });
    expect(await Promise.all([busUp(a), busUp(b)])).toEqual([true, true]);

    /** Writes for `ms`, each in a tick of its own (a message each); the slowest write, ms. */
    let writes = 0;
    const writeFor = async (ms: number) => {
      let slowest = 0;
      for (const start = Date.now(); Date.now() - start < ms; writes++) {
        const t = performance.now();
        await a.set(`h${writes % 50}`, writes, 60_000);
        slowest = Math.max(slowest, performance.now() - t);
        await sleep(5);
      }
      return slowest;
    };
    const before = await writeFor(1000);
    writes = 0;
    await freezeRedis(node);
    let slowest: number;
    try {
      slowest = await writeFor(5000);
      // Every write resolved while Redis answered nothing.
      const stats = a.busStats()!;
      expect(stats.publishFailed + stats.dropped + stats.inFlight).toBeGreaterThan(0);
      expect(await eventually(() => b.busStats()!.up === false, 5000)).toBe(true);
    } finally {
      thawRedis(node);
    }
    console.log(
      `bus hung for 5 s: ${writes} writes, slowest ${slowest.toFixed(1)} ms (${before.toFixed(1)} ms before the freeze); publishes: ${JSON.stringify(a.busStats())}`,
    );
    expect(writes).toBeGreaterThan(50);
    expect(slowest!).toBeLessThan(bus.timeout);
    expect(events.map((e) => e.type)).toContain('down');
    expect(await busUp(b)).toBe(true);
    expect(await busUp(a)).toBe(true);
    await b.get('h1');
    await a.set('h1', 'after', 60_000);
    expect(await eventually(async () => (await b.get('h1')) === 'after', 5000)).toBe(true);
  }, 90_000);

  it('a per-host memcached marked local: true is invalidated too', async () => {
    const namespace = uniqueName('buslocal');
    const bus = { type: 'redis' as const, url: servers.redis.url };
    const [hostA, hostB] = [await memcachedBed.node(), await memcachedBed.node()];
    const shared = { type: 'memcached' as const, servers: servers.memcached, name: 'shared' };
    const perHost = (address: string) => ({
      type: 'memcached' as const,
      servers: [address],
      local: true,
      name: 'host',
      // A per-host tier is not served from for its cap after the bus comes up (it may hold
      // entries older than the subscription): a short cap keeps the test short.
      ttl: 1000,
    });
    // No memory tier: what b serves from comes from its per-host memcached.
    const a = (await instance({ namespace, bus, tiers: [perHost(hostA.address), shared] })).store;
    const b = (await instance({ namespace, bus, tiers: [perHost(hostB.address), shared] })).store;
    expect(await Promise.all([busUp(a), busUp(b)])).toEqual([true, true]);
    await a.set('k', 'v1', 60_000);
    await caughtUp(a, b);
    expect(await b.get('k')).toBe('v1'); // backfilled into host B's memcached
    expect(b.stats().map((s) => s.hits)).toEqual([0, 1]);
    // Once the backfill landed, b answers from its per-host tier.
    const fromHost = async () => (await b.get('k')) === 'v1' && b.stats()[0].hits > 0;
    expect(await eventually(fromHost, 15_000)).toBe(true);

    await a.set('k', 'v2', 60_000);
    expect(await eventually(async () => (await b.get('k')) === 'v2', 5000)).toBe(true);
    expect(b.stats()[0].name).toBe('host');
  });
});
