import { KeyBuilder, TieredStore } from '../../lib';
import type { MemcachedTierOptions } from '../../lib/tiers/memcached/memcached.options';
import { MemcachedTier } from '../../lib/tiers/memcached/memcached.tier';
import { testServers, uniqueName } from '../harness/env';
import { freePort } from '../harness/ports';
import { ElastiCacheEndpoint } from '../support/elasticache-endpoint';
import { eventually } from '../support/eventually';
import { buf, currConnections, discoveredChain, MemcachedTestbed, str } from '../support/memcached';

const servers = testServers();
const SERVERS = servers.memcached;
const INTERVAL = 200;

const bed = new MemcachedTestbed();

async function endpoint(
  options: Parameters<typeof ElastiCacheEndpoint.start>[0] = {},
): Promise<ElastiCacheEndpoint> {
  return bed.endpoint(await ElastiCacheEndpoint.start({ servers: SERVERS, ...options }));
}

function tier(
  discovery: MemcachedTierOptions['discovery'],
  options: Partial<MemcachedTierOptions> = {},
): MemcachedTier {
  return bed.tier(new MemcachedTier({ type: 'memcached', discovery, ...options }));
}

const sorted = (list: readonly string[]) => [...list].sort();

afterAll(() => bed.close());

describe('ElastiCache auto discovery (real memcached behind a test configuration endpoint)', () => {
  it('discovers the 3 nodes and spreads keys over all of them', async () => {
    const e = await endpoint({ version: 4 });
    const t = tier({ endpoint: e.address, intervalMs: INTERVAL });
    await t.connect();
    expect(e.commands[0]).toBe('config get cluster');
    expect(sorted(t.servers)).toEqual(sorted(SERVERS));
    expect(t.configVersion).toBe(4);

    const p = uniqueName('spread');
    const keys = Array.from({ length: 90 }, (_, i) => `${p}:${i}`);
    await t.setMany(keys.map((key) => ({ key, value: buf(key), ttlMs: 60_000 })));
    const perServer = new Map<string, number>();
    for (const key of keys) {
      const holders: string[] = [];
      for (const server of SERVERS)
        if ((await bed.raw.get(server, key)) === key) holders.push(server);
      expect(holders).toEqual([t.serverFor(key)]);
      perServer.set(holders[0], (perServer.get(holders[0]) ?? 0) + 1);
    }
    expect(sorted([...perServer.keys()])).toEqual(sorted(SERVERS));
    for (const count of perServer.values()) expect(count).toBeGreaterThanOrEqual(10);
  });

  it('asks engines before 1.4.14 with "get AmazonElastiCache:cluster"', async () => {
    const e = await endpoint({ legacy: true, version: 2 });
    const t = tier({ endpoint: e.address, intervalMs: INTERVAL });
    await t.connect();
    expect(e.commands.slice(0, 2)).toEqual(['config get cluster', 'get AmazonElastiCache:cluster']);
    expect(sorted(t.servers)).toEqual(sorted(SERVERS));
    expect(t.configVersion).toBe(2);
  });

  it('applies a newer version adding a 4th node within one interval, no request failing', async () => {
    const extra = await bed.node();
    const e = await endpoint({ version: 1 });
    // Without warm-up (memcached-warmup.spec.ts has it): the old node is let go at once.
    const t = tier({ endpoint: e.address, intervalMs: INTERVAL }, { warmup: 0 });
    await t.connect();
    const p = uniqueName('grow');
    const keys = Array.from({ length: 400 }, (_, i) => `${p}:${i}`);
    await t.setMany(keys.map((key) => ({ key, value: buf(key), ttlMs: 60_000 })));

    // Load: 8 workers writing and reading back their own keys until told to stop. A write just
    // before the swap and its read just after go to different nodes: that read is a plain miss.
    let running = true;
    let calls = 0;
    let swapMisses = 0;
    const failures: unknown[] = [];
    const workers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; running; i++) {
        const key = `${p}:w${w}:${i % 50}`;
        try {
          const owner = t.serverFor(key);
          await t.set(key, buf(`${w}/${i}`), 60_000);
          const value = str(await t.get(key));
          if (value === undefined && t.serverFor(key) !== owner) swapMisses++;
          else if (value !== `${w}/${i}`) failures.push(`${key}: ${value}`);
          calls += 2;
        } catch (error) {
          failures.push(error);
        }
      }
    });
    try {
      await eventually(() => calls > 200, 5000);
      const changed = Date.now();
      e.setConfig(2, [...SERVERS, extra.address]);
      expect(await eventually(() => t.servers.includes(extra.address), 2000)).toBe(true);
      // At the next poll (a few intervals, on a busy machine), not at some later fallback.
      expect(Date.now() - changed).toBeLessThanOrEqual(INTERVAL * 10);
      expect(t.configVersion).toBe(2);
      const before = calls;
      await eventually(() => calls > before + 200, 5000);
    } finally {
      running = false;
      await Promise.all(workers);
    }
    expect(failures).toEqual([]);
    expect(swapMisses).toBeLessThanOrEqual(8); // at most one per worker
    expect(sorted(t.servers)).toEqual(sorted([...SERVERS, extra.address]));
    // About a quarter of the keys now belong to the new node, which serves writes.
    const moved = keys.filter((k) => t.serverFor(k) === extra.address);
    expect(moved.length / keys.length).toBeGreaterThan(0.1);
    expect(moved.length / keys.length).toBeLessThan(0.4);
    await t.set(moved[0], buf('on the new node'), 60_000);
    expect(await bed.raw.get(extra.address, moved[0])).toBe('on the new node');

    // A version removing it closes the tier's connection to it.
    const withTier = await currConnections(extra.address);
    e.setConfig(3, SERVERS);
    expect(await eventually(() => !t.servers.includes(extra.address), 2000)).toBe(true);
    expect(
      await eventually(async () => (await currConnections(extra.address)) === withTier - 1, 2000),
    ).toBe(true);
    expect(Object.keys(t.writesPerServer())).not.toContain(extra.address);
    expect(str(await t.get(keys[0]))).toBe(keys[0]);
  });

  it('ignores an older (or the same) version', async () => {
    const e = await endpoint({ version: 10 });
    const t = tier({ endpoint: e.address, intervalMs: INTERVAL });
    await t.connect();
    const polls = e.polls;
    e.setConfig(9, [SERVERS[0]]);
    expect(await eventually(() => e.polls >= polls + 2, 3000)).toBe(true);
    e.setConfig(10, [SERVERS[1]]);
    expect(await eventually(() => e.polls >= polls + 4, 3000)).toBe(true);
    expect(sorted(t.servers)).toEqual(sorted(SERVERS));
    expect(t.configVersion).toBe(10);
    expect(t.clusterDiscovery?.lastError).toBeUndefined();
  });

  it('ignoreErrors against a plain memcached endpoint uses that one node', async () => {
    const t = tier({ endpoint: SERVERS[0], intervalMs: INTERVAL, ignoreErrors: true });
    await t.connect();
    expect(t.servers).toEqual([SERVERS[0]]);
    expect(t.configVersion).toBe(-1);
    const k = uniqueName('plain');
    await t.set(k, buf('alone'), 60_000);
    expect(str(await t.get(k))).toBe('alone');
    expect(await bed.raw.get(SERVERS[0], k)).toBe('alone');
    // Later polls keep failing the same way and change nothing.
    const polls = t.clusterDiscovery!.polls;
    expect(await eventually(() => t.clusterDiscovery!.polls >= polls + 2, 3000)).toBe(true);
    expect(t.clusterDiscovery?.lastError?.message).toMatch(/not an ElastiCache/);
    expect(t.servers).toEqual([SERVERS[0]]);
  });

  it('without ignoreErrors, a failed first discovery rejects with the endpoint in the message', async () => {
    const plain = tier({ endpoint: SERVERS[0] });
    await expect(plain.connect()).rejects.toThrow(
      `memcached: ElastiCache discovery at ${SERVERS[0]}: not an ElastiCache configuration endpoint ` +
        `(it answered "ERROR" to "config get cluster" and "END" to "get AmazonElastiCache:cluster")`,
    );
    const port = await freePort();
    const unreachable = tier({ endpoint: `127.0.0.1:${port}` });
    await expect(unreachable.connect()).rejects.toThrow(
      new RegExp(`ElastiCache discovery at 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED.*ignoreErrors`),
    );
    expect(unreachable.servers).toEqual([]);
    // Operations reach the same error rather than a ring that does not exist.
    await expect(unreachable.get('k')).rejects.toThrow(`127.0.0.1:${port}`);

    // Through the store: the tier fails to connect, the error event names the endpoint.
    const store = new TieredStore({
      tiers: [{ type: 'memcached', discovery: { endpoint: SERVERS[0] } }],
    });
    bed.store(store);
    await expect(store.connect({ failFast: true })).rejects.toThrow(SERVERS[0]);
  });

  it('ignoreErrors with an unreachable endpoint uses it alone until a real configuration appears', async () => {
    const port = await freePort();
    const t = tier({ endpoint: `127.0.0.1:${port}`, intervalMs: INTERVAL, ignoreErrors: true });
    await expect(t.connect()).rejects.toThrow(/no memcached server is reachable/);
    expect(t.servers).toEqual([`127.0.0.1:${port}`]);
    await endpoint({ port, version: 1 });
    expect(await eventually(() => t.servers.length === 3, 3000)).toBe(true);
    expect(sorted(t.servers)).toEqual(sorted(SERVERS));
    await t.connect();
    const k = uniqueName('late');
    await t.set(k, buf('found'), 60_000);
    expect(str(await t.get(k))).toBe('found');
  });

  it('polls right after connection errors, long before the interval', async () => {
    const gone = await bed.node();
    const e = await endpoint({ version: 1, servers: [...SERVERS, gone.address] });
    const t = tier({ endpoint: e.address, intervalMs: 60_000 });
    await t.connect();
    const p = uniqueName('gone');
    const keys = Array.from({ length: 100 }, (_, i) => `${p}:${i}`);
    const onGone = keys.filter((k) => t.serverFor(k) === gone.address);
    expect(onGone.length).toBeGreaterThan(0);

    // The cluster replaces the node: it dies and the next configuration no longer lists it.
    await gone.stop('SIGKILL');
    e.setConfig(2, SERVERS);
    expect(e.polls).toBe(1);
    const started = Date.now();
    // Failover hides the failure from this call; the error also triggers a poll.
    await expect(t.get(onGone[0])).resolves.toBeUndefined();
    expect(await eventually(() => t.configVersion === 2, 3000)).toBe(true);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(e.polls).toBe(2);
    expect(sorted(t.servers)).toEqual(sorted(SERVERS));
    expect(t.failedServers).toEqual([]); // removed from the cluster, so no longer "failed"
    await t.set(onGone[1], buf('x'), 60_000);
    expect(str(await t.get(onGone[1]))).toBe('x');
  });

  it('close() stops polling', async () => {
    const e = await endpoint({ version: 1 });
    const t = tier({ endpoint: e.address, intervalMs: 50 });
    await t.connect();
    expect(await eventually(() => e.polls >= 3, 3000)).toBe(true);
    await t.close();
    const polls = e.polls;
    await new Promise((r) => setTimeout(r, 250)); // 5 intervals
    expect(e.polls).toBe(polls);
  });

  it('grows 3 → 4 nodes under load with Cassandra behind: ~1/4 of keys move, no origin miss', async () => {
    const extra = await bed.node();
    const e = await endpoint({ version: 1 });
    const namespace = uniqueName('scale');
    const discovery = { endpoint: e.address, intervalMs: INTERVAL };
    // Without warm-up (memcached-warmup.spec.ts has it): Cassandra serves the moved keys.
    const { chain, errors } = await discoveredChain(discovery, namespace, { warmup: 0 });
    bed.store(chain);

    const N = 2000;
    const keys = Array.from({ length: N }, (_, i) => `k${i}`);
    const value = (k: string) => ({ key: k, payload: `value of ${k}` });
    for (let i = 0; i < N; i += 250) {
      await chain.setMany(
        keys.slice(i, i + 250).map((k) => ({ key: k, value: value(k), ttl: 600_000 })),
      );
    }

    // Who owns each final key, before and after, on a tier following the same endpoint.
    const finals = new KeyBuilder({ namespace });
    const observer = tier(discovery);
    await observer.connect();
    const before = keys.map((k) => observer.serverFor(finals.build(k)));

    let running = true;
    let reads = 0;
    let originMisses = 0;
    const wrong: string[] = [];
    const check = (k: string, v: unknown) => {
      reads++;
      if (v === undefined) originMisses++;
      else if (JSON.stringify(v) !== JSON.stringify(value(k))) wrong.push(k);
    };
    const readers = Array.from({ length: 4 }, async (_, r) => {
      for (let i = r; running; i += 4) {
        const k = keys[(i * 7) % N];
        check(k, await chain.get(k));
      }
    });
    try {
      await eventually(() => reads > 300, 10_000);
      e.setConfig(2, [...SERVERS, extra.address]);
      expect(await eventually(() => observer.servers.includes(extra.address), 2000)).toBe(true);
      // The chain's own tier polls on its own timer: wait until it reads a moved key from the
      // new (empty) node, i.e. misses it in memcached.
      const firstMoved = keys.find((k, i) => observer.serverFor(finals.build(k)) !== before[i])!;
      expect(
        await eventually(async () => {
          const misses = chain.stats()[0].misses;
          check(firstMoved, await chain.get(firstMoved));
          return chain.stats()[0].misses > misses;
        }, 2000),
      ).toBe(true);
      // Every key read once more, in batches, while the readers go on.
      const t0 = chain.stats();
      for (let i = 0; i < N; i += 250) {
        const batch = keys.slice(i, i + 250);
        const values = await chain.getMany(batch);
        batch.forEach((k, j) => check(k, values[j]));
      }
      running = false;
      await Promise.all(readers);
      const t1 = chain.stats();
      const mcMisses = t1[0].misses - t0[0].misses;
      const csHits = t1[1].hits - t0[1].hits;
      // Every memcached miss of the pass was served by Cassandra. A reader's get in flight when
      // t0 was taken may count on one side only: at most one per reader.
      expect(mcMisses).toBeGreaterThan(0);
      expect(Math.abs(csHits - mcMisses)).toBeLessThanOrEqual(readers.length);
    } finally {
      running = false;
      await Promise.all(readers);
    }

    const after = keys.map((k) => observer.serverFor(finals.build(k)));
    const moved = keys.filter((_, i) => after[i] !== before[i]);
    const share = moved.length / N;
    // Consistent hashing: only the keys the new node took moved.
    expect(moved.every((k) => observer.serverFor(finals.build(k)) === extra.address)).toBe(true);
    expect(share).toBeGreaterThanOrEqual(0.15);
    expect(share).toBeLessThanOrEqual(0.35);
    expect(originMisses).toBe(0);
    expect(wrong).toEqual([]);
    expect(errors).toEqual([]);
    process.stdout.write(
      `scaling 3 → 4: ${moved.length}/${N} keys moved (${(share * 100).toFixed(1)}%), ` +
        `${reads} reads, ${originMisses} origin misses\n`,
    );

    // The moved keys were rewarmed on the new node: memcached alone now serves every key.
    await chain.disconnect();
    const nearOnly = new TieredStore({ namespace, tiers: [{ type: 'memcached', discovery }] });
    bed.store(nearOnly);
    await nearOnly.connect({ failFast: true });
    const values = await nearOnly.getMany(keys);
    expect(values.filter((v) => v === undefined)).toHaveLength(0);
    expect(await bed.raw.get(extra.address, finals.build(moved[0]))).toBeDefined();
  });
});
