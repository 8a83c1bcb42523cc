import {
  KeyBuilder,
  MemcachedTier,
  TieredStore,
  type TieredStoreOptions,
  type TierOptions,
} from '../../lib';
import { PATIENT_TIMEOUT_MS, testServers, uniqueName } from '../harness/env';
import { MemcachedNode } from '../harness/memcached';
import { freePort } from '../harness/ports';
import { ManualClock } from '../support/manual-clock';

const servers = testServers();
const keyspace = uniqueName('chain').toLowerCase();
const timeout = PATIENT_TIMEOUT_MS;
const cassandra: TierOptions = { type: 'cassandra', ...servers.cassandra, keyspace, timeout };
const memcached: TierOptions = { type: 'memcached', servers: servers.memcached, timeout };

describe('tier chain', () => {
  const open: TieredStore[] = [];
  let clock: ManualClock;
  let namespace: string;

  /** A store in this test's namespace; `errors` collects its error events. */
  async function store(tiers: TierOptions[], extra: Partial<TieredStoreOptions> = {}) {
    const s = new TieredStore({ tiers, namespace, clock, ...extra });
    const errors: Error[] = [];
    s.on('error', (e: Error) => errors.push(e));
    open.push(s);
    await s.connect();
    return Object.assign(s, { errors });
  }

  beforeEach(() => {
    clock = new ManualClock();
    namespace = uniqueName('chain');
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.disconnect()));
  });

  it('reads nearest first and backfills the nearer tiers from a far hit', async () => {
    const farOnly = await store([cassandra]);
    await farOnly.set('k', { from: 'cassandra' }, 60_000);

    const chain = await store([{ type: 'memory' }, memcached, cassandra]);
    expect(await chain.get('k')).toEqual({ from: 'cassandra' });
    await chain.disconnect(); // waits for the background backfill
    const [mem, mc, cs] = chain.stats();
    expect([mem.misses, mc.misses, cs.hits]).toEqual([1, 1, 1]);
    expect([mem.backfills, mc.backfills, cs.backfills]).toEqual([1, 1, 0]);

    // The memcached tier now holds it on its own.
    const nearOnly = await store([memcached]);
    expect(await nearOnly.get('k')).toEqual({ from: 'cassandra' });

    // And a second read through a chain is answered by memory, not by the servers.
    const again = await store([{ type: 'memory' }, memcached, cassandra]);
    await again.get('k');
    await again.get('k');
    expect(again.stats().map((t) => t.hits)).toEqual([1, 1, 0]);
  });

  it('backfills a key this very store wrote last', async () => {
    const chain = await store([{ type: 'memory', ttl: 1000 }, memcached]);
    await chain.set('k', 'v', 60_000);
    clock.advance(1001); // the memory copy is gone, memcached still has it
    expect(await chain.get('k')).toBe('v');
    await chain.disconnect();
    expect(chain.stats()[0].backfills).toBe(1);
  });

  it('never backfills a value older than a write made while it was being read', async () => {
    const farOnly = await store([cassandra]);
    await farOnly.set('k', 'old', 60_000);
    const chain = await store([{ type: 'memory' }, cassandra]);
    const read = chain.get('k'); // reads 'old' from Cassandra…
    await chain.set('k', 'new', 60_000); // …while this write lands
    await read;
    await chain.disconnect();
    expect(chain.stats()[0].backfills).toBe(0);
  });

  it('backfills with the remaining TTL, not a fresh one', async () => {
    const farOnly = await store([cassandra]);
    await farOnly.set('k', 'v', 10_000);
    clock.advance(4000);
    const chain = await store([memcached, cassandra]);
    expect(await chain.get('k')).toBe('v');
    await chain.disconnect();

    const nearOnly = await store([memcached]);
    clock.advance(5999);
    expect(await nearOnly.get('k')).toBe('v');
    clock.advance(1);
    expect(await nearOnly.get('k')).toBeUndefined();
  });

  it('caps each tier by its ttl: the memory tier forgets after its cap', async () => {
    const chain = await store([{ type: 'memory', ttl: 2000 }, cassandra]);
    await chain.set('k', 'v', 60_000);
    clock.advance(2001);
    expect(await chain.get('k')).toBe('v');
    expect(chain.stats().map((t) => [t.hits, t.misses])).toEqual([
      [0, 1],
      [1, 0],
    ]);
  });

  describe('failures', () => {
    let node: MemcachedNode;

    beforeEach(async () => {
      node = await MemcachedNode.start();
    });

    afterEach(async () => {
      await node.stop();
    });

    it('memcached down: served from Cassandra without errors to callers, rewarmed when it returns', async () => {
      const breaker = { failures: 1, cooldownMs: 1000 };
      const chain = await store(
        [{ type: 'memcached', servers: [node.address], timeout: 200 }, cassandra],
        { circuitBreaker: breaker },
      );
      await chain.set('k', 'persisted', 60_000);
      await node.stop('SIGKILL');

      expect(await chain.get('k')).toBe('persisted');
      expect(await chain.get('k')).toBe('persisted');
      const [mc] = chain.stats();
      expect(mc.errors).toBe(1); // one timeout, then the open circuit skips the dead tier
      // Skipped while open: the second read, and the backfills both reads would have written.
      expect(mc.skipped).toBe(3);
      expect(mc.circuit).toBe('open');
      expect(chain.errors[0].message).toMatch(/^memcached: get "k" failed/);
      await expect(chain.set('k2', 'written while down', 60_000)).resolves.toBe(true);

      await node.start(); // a restarted memcached is empty
      clock.advance(1000);
      expect(await chain.get('k')).toBe('persisted'); // probe: miss in memcached, hit in Cassandra
      await chain.disconnect();
      expect(chain.stats()[0].circuit).toBe('closed');

      const rewarmed = await store([{ type: 'memcached', servers: [node.address] }]);
      expect(await rewarmed.get('k')).toBe('persisted');
      expect(rewarmed.errors).toEqual([]);
    });

    it('Cassandra down: memcached alone serves, nobody sees an error', async () => {
      const deadPort = await freePort();
      const chain = await store([
        memcached,
        {
          ...servers.cassandra,
          type: 'cassandra',
          keyspace,
          contactPoints: [`127.0.0.1:${deadPort}`],
          timeout: 500,
        },
      ]);
      expect(chain.errors[0].message).toMatch(/^cassandra: connect failed/);
      await expect(chain.set('k', 'v', 60_000)).resolves.toBe(true);
      expect(await chain.get('k')).toBe('v');
      expect(await chain.getMany(['k', 'missing'])).toEqual(['v', undefined]);
      await expect(chain.delete('k')).resolves.toBe(false); // not every tier confirmed it
      expect(await chain.get('k')).toBeUndefined();
      expect(chain.errors.every((e) => e.message.startsWith('cassandra: '))).toBe(true);
      expect(chain.stats()[0].errors).toBe(0);
    });

    it('both down: memory alone serves, nobody sees an error', async () => {
      const [mcPort, csPort] = [await freePort(), await freePort()];
      const chain = await store([
        { type: 'memory' },
        { type: 'memcached', servers: [`127.0.0.1:${mcPort}`], timeout: 200 },
        {
          ...servers.cassandra,
          type: 'cassandra',
          keyspace,
          contactPoints: [`127.0.0.1:${csPort}`],
          timeout: 500,
        },
      ]);
      await expect(chain.set('k', { v: 1 }, 60_000)).resolves.toBe(true);
      expect(await chain.get('k')).toEqual({ v: 1 });
      expect(await chain.get('absent')).toBeUndefined();
      expect(chain.stats().map((t) => t.errors)).toEqual([
        0,
        expect.any(Number),
        expect.any(Number),
      ]);
      expect(chain.stats()[1].errors).toBeGreaterThan(0);
      expect(chain.stats()[2].errors).toBeGreaterThan(0);
    });
  });

  describe('counters', () => {
    it.each([
      ['memcached authoritative', [{ type: 'memory' }, memcached] as TierOptions[]],
      ['Cassandra authoritative', [{ type: 'memory' }, memcached, cassandra] as TierOptions[]],
    ])(
      '%s: 1,000 concurrent increments through two stores give the exact total',
      async (_label, tiers) => {
        const [a, b] = [await store(tiers), await store(tiers)];
        await Promise.all(
          Array.from({ length: 1000 }, (_, i) => (i % 2 === 0 ? a : b).increment('hits', 1)),
        );
        expect(await a.increment('hits', 0)).toBe(1000);
        expect(await b.increment('hits', 0)).toBe(1000);
        // The copy in the nearer tiers is readable as a number.
        expect(await b.get('hits')).toBe(1000);
        expect([...a.errors, ...b.errors]).toEqual([]);
      },
    );
  });

  it('a clear() on one instance reaches another within the generation refresh', async () => {
    const tiers: TierOptions[] = [{ type: 'memory' }, memcached, cassandra];
    const a = await store(tiers);
    const b = await store(tiers);
    await a.set('k', 'old', 60_000);
    expect(await b.get('k')).toBe('old');
    await a.clear();
    expect(await a.get('k')).toBeUndefined();
    clock.advance(5000);
    await b.get('k'); // notices the refresh is due and starts it
    await b.refreshGeneration();
    expect(b.generation).toBe(a.generation);
    expect(await b.get('k')).toBeUndefined();
  });

  it('treats bytes it cannot decode as a miss plus an error event', async () => {
    const chain = await store([{ type: 'memory' }, memcached, cassandra]);
    await chain.set('k', 'good', 60_000);
    const raw = new MemcachedTier({ type: 'memcached', servers: servers.memcached });
    await raw.connect();
    await raw.set(new KeyBuilder({ namespace }).build('k'), Buffer.from('not ours'), 60);
    await raw.close();
    clock.advance(5001); // past the memory tier's cap: the next read goes to memcached
    await expect(chain.get('k')).resolves.toBe('good'); // memcached: a miss; Cassandra answers
    expect(chain.errors.map((e) => e.message)).toEqual([
      'memcached: decode "k" failed: unknown format byte 0x6e',
    ]);
    expect(chain.stats()[1].misses).toBe(1);
  });

  it('reports per-tier latency for the remote tiers', async () => {
    const chain = await store([{ type: 'memory' }, memcached, cassandra]);
    await chain.set('k', 1, 60_000);
    clock.advance(5001);
    await chain.get('k');
    const [mem, mc, cs] = chain.stats();
    expect(mem.latency.count).toBe(0);
    expect(mc.latency.count).toBeGreaterThan(0);
    expect(cs.latency.count).toBeGreaterThan(0);
    expect(mc.latency.meanMs).toBeGreaterThan(0);
  });
});
