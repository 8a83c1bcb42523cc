import { Registry } from 'prom-client';
import { setTimeout as sleep } from 'node:timers/promises';
import { TieredStore, type TieredStoreOptions, type TierOptions } from '../../lib';
import { collectMetrics, type CacheMetrics } from '../../lib/telemetry/prometheus';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import { eventually } from '../support/eventually';
import { ManualClock } from '../support/manual-clock';
import { MemcachedTestbed } from '../support/memcached';
import { seriesValue } from '../support/prometheus-series';

/**
 * The Prometheus metrics of a store over the real servers (memory → memcached → Cassandra), read
 * from a prom-client registry: hits at each tier, and a memcached process killed under the store.
 */

const servers = testServers();
const keyspace = uniqueName('metrics').toLowerCase();
dropKeyspaceAfterAll(keyspace);
const cassandra: TierOptions = {
  type: 'cassandra',
  ...servers.cassandra,
  keyspace,
  timeout: 10_000,
};
const memcached = (list: string[]): TierOptions => ({
  type: 'memcached',
  servers: list,
  timeout: 3000,
});

const bed = new MemcachedTestbed();
const attached: CacheMetrics[] = [];
afterEach(async () => {
  for (const m of attached.splice(0)) await m.detach();
});
afterAll(() => bed.close());

/** A connected store (closed after the file), with its metrics in `registry`. */
async function store(options: TieredStoreOptions, registry?: Registry): Promise<TieredStore> {
  const s = bed.store(new TieredStore(options));
  if (registry !== undefined) attached.push(await collectMetrics(s, { registry }));
  await s.connect();
  return s;
}

describe('metrics on real servers', () => {
  it('counts hits at memory, memcached and Cassandra, misses and backfills, exactly', async () => {
    const namespace = uniqueName('hits');
    const registry = new Registry();
    const chain = await store(
      { namespace, tiers: [{ type: 'memory' }, memcached(servers.memcached), cassandra] },
      registry,
    );
    // Writers of one tier each, in the same namespace: what only that tier holds.
    const memcachedOnly = await store({ namespace, tiers: [memcached(servers.memcached)] });
    const cassandraOnly = await store({ namespace, tiers: [cassandra] });
    await chain.set('m', 'everywhere', 60_000);
    await memcachedOnly.set('b', 'memcached', 60_000);
    await cassandraOnly.set('c', 'cassandra', 60_000);

    expect(await chain.get('m')).toBe('everywhere'); // memory
    expect(await chain.get('b')).toBe('memcached'); // memory miss, memcached hit
    expect(await chain.get('c')).toBe('cassandra'); // misses, Cassandra hit
    expect(await chain.get('none')).toBeUndefined(); // a miss everywhere

    const ns = { namespace };
    const reads = (tier: string, result: string) =>
      seriesValue(registry, 'tiered_cache_reads_total', { ...ns, tier, result });
    const read = async () =>
      Promise.all(
        ['memory', 'memcached', 'cassandra'].map(async (tier) => [
          await reads(tier, 'hit'),
          await reads(tier, 'miss'),
        ]),
      );
    expect(await read()).toEqual([
      [1, 3],
      [1, 2],
      [1, 1],
    ]);
    // Backfills land in the background: `b` into memory, `c` into memory and memcached.
    const backfills = (tier: string) =>
      seriesValue(registry, 'tiered_cache_backfills_total', { ...ns, tier });
    expect(await eventually(async () => (await backfills('memory')) === 2, 10_000)).toBe(true);
    expect(await eventually(async () => (await backfills('memcached')) === 1, 10_000)).toBe(true);
    expect(await backfills('cassandra')).toBe(0);
    // Timed remote reads: memcached was asked for b, c and none; Cassandra for c and none.
    const gets = (tier: string) =>
      seriesValue(registry, 'tiered_cache_tier_call_duration_seconds_count', {
        ...ns,
        tier,
        op: 'get',
        result: 'ok',
      });
    expect([await gets('memcached'), await gets('cassandra')]).toEqual([3, 2]);
    for (const tier of ['memory', 'memcached', 'cassandra']) {
      expect(await seriesValue(registry, 'tiered_cache_tier_errors_total', { ...ns, tier })).toBe(
        0,
      );
      expect(await seriesValue(registry, 'tiered_cache_circuit_state', { ...ns, tier })).toBe(0);
    }
    expect(
      await seriesValue(registry, 'tiered_cache_memory_entries', { ...ns, tier: 'memory' }),
    ).toBe(3);
  });

  it('a memcached process killed: its errors counted, its circuit opens, then closes when it is back', async () => {
    const node = await bed.node();
    const namespace = uniqueName('kill');
    const registry = new Registry();
    const clock = new ManualClock(Date.now());
    const cooldownMs = 60_000;
    const chain = await store(
      {
        namespace,
        clock,
        tiers: [{ type: 'memory' }, memcached([node.address]), cassandra],
        circuitBreaker: { failures: 2, cooldownMs },
      },
      registry,
    );
    await chain.set('k', 1, 60_000);
    const ns = { namespace, tier: 'memcached' };
    const metric = (name: string, labels: Record<string, string> = ns) =>
      seriesValue(registry, name, labels);
    expect(await metric('tiered_cache_circuit_state')).toBe(0);

    await node.stop('SIGKILL');
    // Two reads memory cannot answer: memcached fails both (Cassandra answers), which opens its
    // circuit; the third read skips it.
    for (const key of ['x1', 'x2', 'x3']) expect(await chain.get(key)).toBeUndefined();
    expect({
      errors: await metric('tiered_cache_tier_errors_total'),
      skipped: await metric('tiered_cache_tier_skipped_total'),
      opened: await metric('tiered_cache_circuit_opened_total'),
      state: await metric('tiered_cache_circuit_state'),
      failedGets: await metric('tiered_cache_tier_call_duration_seconds_count', {
        ...ns,
        op: 'get',
        result: 'error',
      }),
      cassandraErrors: await metric('tiered_cache_tier_errors_total', {
        namespace,
        tier: 'cassandra',
      }),
    }).toEqual({ errors: 2, skipped: 1, opened: 1, state: 2, failedGets: 2, cassandraErrors: 0 });

    // Back, and past the cooldown: the next read probes memcached, which answers; it closes.
    await node.start();
    clock.advance(cooldownMs + 1);
    await sleep(5);
    expect(
      await eventually(async () => {
        await chain.get('probe');
        return (await metric('tiered_cache_circuit_state')) === 0;
      }, 15_000),
    ).toBe(true);
    expect(await metric('tiered_cache_circuit_opened_total')).toBe(1);
  });
});
