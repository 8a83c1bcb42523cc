import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { Counter, Registry, register } from 'prom-client';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createTieredStore,
  InvalidOptionError,
  TieredCache,
  TieredStore,
  type InvalidationTransport,
  type TransportHandlers,
  type TieredStoreOptions,
} from '../../lib';
import { MODULE_ONLY_OPTIONS } from '../../lib/nest/tiered-cache.options';
import { metricsConfig } from '../../lib/telemetry/metrics.options';
import { collectMetrics, type CacheMetrics } from '../../lib/telemetry/prometheus';
import { eventually } from '../support/eventually';
import { withFaults, type FaultTier } from '../support/fault-tier';
import { ManualClock } from '../support/manual-clock';
import { MapTier } from '../support/map-tier';
import { seriesOf } from '../support/prometheus-series';

/**
 * The Prometheus metrics of a store, read from a real prom-client registry, over the memory tier
 * and an in-process far tier (faults injected), a manual clock, and an in-process bus channel.
 */

/** The series of `registry` whose name starts with `prefix`. */
async function only(registry: Registry, prefix: string): Promise<Record<string, number>> {
  const all = await seriesOf(registry);
  return Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith(prefix)));
}

const opened: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close();
});
beforeAll(() => Logger.overrideLogger(false));

/** A store over memory and a far `MapTier` (faults injectable), with metrics in a registry of its own. */
async function observed(
  options: { namespace?: string; registry?: Registry; grace?: number } = {},
): Promise<{
  clock: ManualClock;
  far: FaultTier<Buffer>;
  store: TieredStore;
  cache: TieredCache;
  registry: Registry;
}> {
  const clock = new ManualClock(1_000_000);
  const far = withFaults(new MapTier({ clock, name: 'far' }));
  const registry = options.registry ?? new Registry();
  const store = createTieredStore({
    clock,
    namespace: options.namespace ?? 'unit',
    tiers: [{ type: 'memory' }, far],
    circuitBreaker: { failures: 2, cooldownMs: 1000 },
  });
  const cache = new TieredCache(store, {
    clock,
    herd: { grace: options.grace ?? 60_000 },
    logErrors: false,
    metrics: { registry },
  });
  await cache.onModuleInit();
  opened.push({ close: () => cache.onApplicationShutdown() });
  return { clock, far, store, cache, registry };
}

describe('collectMetrics (prom-client registry)', () => {
  it('counts a scripted sequence exactly: hits per tier, misses, stale, origin, failures, circuit', async () => {
    const { clock, far, store, cache, registry } = await observed();
    const L = 'namespace=unit';

    // Plain reads: two memory hits; once the memory copy is past its 5 s cap, a far hit
    // (backfilled into memory); a key nobody has misses in both tiers.
    await cache.set('a', 1);
    expect(await cache.get('a')).toBe(1);
    expect(await cache.get('a')).toBe(1);
    clock.advance(5001);
    await sleep(5); // the memory tier's LRU reads the clock at most once per millisecond
    expect(await cache.get('a')).toBe(1);
    expect(await cache.get('nope')).toBeUndefined();
    expect(await only(registry, 'tiered_cache_reads_total')).toEqual({
      [`tiered_cache_reads_total{${L},result=hit,tier=memory}`]: 2,
      [`tiered_cache_reads_total{${L},result=miss,tier=memory}`]: 2,
      [`tiered_cache_reads_total{${L},result=hit,tier=far}`]: 1,
      [`tiered_cache_reads_total{${L},result=miss,tier=far}`]: 1,
    });
    expect(await only(registry, 'tiered_cache_backfills_total')).toEqual({
      [`tiered_cache_backfills_total{${L},tier=memory}`]: 1,
      [`tiered_cache_backfills_total{${L},tier=far}`]: 0,
    });

    // Read-through: computed once (one origin call), then stale past its TTL: served at once
    // while a refresh runs in the background; the refresh's origin call fails, it is reported.
    expect(await cache.getOrSet('s', () => 'v1', { ttl: 1000 })).toBe('v1');
    clock.advance(1001);
    await sleep(5);
    const failing = async (): Promise<string> => {
      throw new Error('origin down');
    };
    expect(await cache.lookup('s', failing, { ttl: 1000 })).toMatchObject({ status: 'STALE' });
    expect(
      await eventually(async () => {
        const s = await seriesOf(registry);
        return s[`tiered_cache_refresh_failures_total{${L}}`] === 1;
      }, 5000),
    ).toBe(true);

    // A far tier that fails reads: two errors open its circuit, the next read skips it.
    far.fail('get');
    expect(await cache.get('x1')).toBeUndefined();
    expect(await cache.get('x2')).toBeUndefined();
    expect(await cache.get('x3')).toBeUndefined();

    const s = await seriesOf(registry);
    const memory = store['slots'][0].tier as unknown as { bytes: number; size: number };
    expect(s).toMatchObject({
      [`tiered_cache_tier_errors_total{${L},tier=far}`]: 2,
      [`tiered_cache_tier_errors_total{${L},tier=memory}`]: 0,
      [`tiered_cache_tier_skipped_total{${L},tier=far}`]: 1,
      [`tiered_cache_circuit_opened_total{${L},tier=far}`]: 1,
      [`tiered_cache_circuit_state{${L},tier=far}`]: 2,
      [`tiered_cache_circuit_state{${L},tier=memory}`]: 0,
      [`tiered_cache_stale_served_total{${L}}`]: 1,
      [`tiered_cache_refresh_failures_total{${L}}`]: 1,
      [`tiered_cache_origin_duration_seconds_count{${L},outcome=ok}`]: 1,
      [`tiered_cache_origin_duration_seconds_count{${L},outcome=error}`]: 1,
      [`tiered_cache_leases_total{${L},outcome=acquired}`]: 2,
      [`tiered_cache_leases_total{${L},outcome=waited}`]: 0,
      [`tiered_cache_leases_total{${L},outcome=lost}`]: 0,
      [`tiered_cache_leases_total{${L},outcome=local}`]: 0,
      [`tiered_cache_tier_call_duration_seconds_count{${L},op=get,result=error,tier=far}`]: 2,
      // `a` and `s` are in memory; the sizes are the tier's own.
      [`tiered_cache_memory_entries{${L},tier=memory}`]: 2,
      [`tiered_cache_memory_bytes{${L},tier=memory}`]: memory.bytes,
    });
    expect(memory.size).toBe(2);
    expect(memory.bytes).toBeGreaterThan(0);
    // Reads. Memory: hits `a` twice and the stale `s`; misses `a` past its cap, `nope`, `s`
    // before it was computed, `x1`…`x3`. Far: hits `a`, and the stale `s` (the refresh's check of
    // the lease tier); misses `nope`, and `s` twice (before the lease and after); fails `x1`,
    // `x2`, skips `x3`.
    expect(s).toMatchObject({
      [`tiered_cache_reads_total{${L},result=hit,tier=memory}`]: 3,
      [`tiered_cache_reads_total{${L},result=miss,tier=memory}`]: 6,
      [`tiered_cache_reads_total{${L},result=hit,tier=far}`]: 2,
      [`tiered_cache_reads_total{${L},result=miss,tier=far}`]: 3,
    });
    // The same as the store's own counters.
    expect(store.stats().map((t) => [t.name, t.hits, t.misses])).toEqual([
      ['memory', 3, 6],
      ['far', 2, 3],
    ]);
    // No series names a key.
    expect(Object.keys(s).filter((k) => /[{,=](a|s|nope|x\d)[,}]/.test(k))).toEqual([]);
    // Without a bus, no bus series.
    expect(Object.keys(s).filter((k) => k.startsWith('tiered_cache_bus_'))).toEqual([]);
  });

  it('listens to no event of the hit path, and to none once detached', async () => {
    const store = createTieredStore({ tiers: [{ type: 'memory' }] });
    const metrics = await collectMetrics(store, { registry: new Registry() });
    const { listened } = store.events;
    expect([listened.hit, listened.miss, listened.backfill]).toEqual([false, false, false]);
    expect(listened['tier-call'] && listened.origin && listened.lease && listened.stale).toBe(true);
    await metrics.detach();
    expect(Object.values(listened).some(Boolean)).toBe(false);
    await store.disconnect();
  });

  it('exports the bus: state, messages in and out, failed publishes and delivery lag', async () => {
    const channel = new InProcessChannel();
    const stores = ['a', 'b'].map(() =>
      createTieredStore({
        namespace: 'bus',
        tiers: [{ type: 'memory' }],
        bus: { transport: channel.transport() },
      }),
    );
    const registries = [new Registry(), new Registry()];
    const metrics = await Promise.all(
      stores.map((store, i) => collectMetrics(store, { registry: registries[i] })),
    );
    opened.push({
      close: async () => {
        for (const m of metrics) await m.detach();
        for (const store of stores) await store.disconnect();
      },
    });
    await Promise.all(stores.map((s) => s.connect()));
    await stores[0].set('k', 1);
    expect(await eventually(() => stores[1].busStats()?.received === 1, 5000)).toBe(true);
    channel.failing = true;
    await stores[0].set('k', 2);
    expect(await eventually(() => stores[0].busStats()?.publishFailed === 1, 5000)).toBe(true);
    const L = 'namespace=bus';
    expect(await only(registries[0], 'tiered_cache_bus_')).toEqual({
      [`tiered_cache_bus_up{${L}}`]: 1,
      [`tiered_cache_bus_messages_total{direction=out,namespace=bus,result=ok}`]: 1,
      [`tiered_cache_bus_messages_total{direction=out,namespace=bus,result=failed}`]: 1,
      [`tiered_cache_bus_messages_total{direction=in,namespace=bus,result=ok}`]: 0,
      [`tiered_cache_bus_messages_total{direction=in,namespace=bus,result=invalid}`]: 0,
      [`tiered_cache_bus_dropped_keys_total{${L}}`]: 0,
      [`tiered_cache_bus_gaps_total{${L}}`]: 0,
      [`tiered_cache_bus_pending_keys{${L}}`]: 0,
    });
    const b = await only(registries[1], 'tiered_cache_bus_');
    expect(b).toMatchObject({
      [`tiered_cache_bus_messages_total{direction=in,namespace=bus,result=ok}`]: 1,
      [`tiered_cache_bus_lag_seconds_count{${L}}`]: 1,
    });
    expect(b[`tiered_cache_bus_lag_seconds_sum{${L}}`]).toBeGreaterThanOrEqual(0);
    channel.down();
    expect((await only(registries[1], 'tiered_cache_bus_up'))[`tiered_cache_bus_up{${L}}`]).toBe(0);
  });
});

describe('several stores and registries', () => {
  it('tells stores apart by namespace; one namespace twice adds up; detaching drops the series', async () => {
    const registry = new Registry();
    const [a, b, a2] = await Promise.all(
      ['one', 'two', 'one'].map((namespace) => observed({ namespace, registry })),
    );
    await a.cache.get('k');
    await b.cache.get('k');
    await b.cache.get('k');
    await a2.cache.get('k');
    const miss = (ns: string) =>
      `tiered_cache_reads_total{namespace=${ns},result=miss,tier=memory}`;
    expect(await seriesOf(registry)).toMatchObject({ [miss('one')]: 2, [miss('two')]: 2 });
    await a.cache.onApplicationShutdown();
    expect(await seriesOf(registry)).toMatchObject({ [miss('one')]: 1, [miss('two')]: 2 });
    await a2.cache.onApplicationShutdown();
    const s = await seriesOf(registry);
    expect(Object.keys(s).some((k) => k.includes('namespace=one'))).toBe(false);
    expect(s[miss('two')]).toBe(2);
    // The last store out takes the metrics with it.
    await b.cache.onApplicationShutdown();
    expect(await registry.getMetricsAsJSON()).toEqual([]);
  });

  it('counts one store attached twice (by the module and by hand) once', async () => {
    const registry = new Registry();
    const { store, cache } = await observed({ registry });
    const again = await collectMetrics(store, { registry });
    await cache.get('k');
    await cache.getOrSet('g', () => 1, { ttl: 1000 });
    const L = 'namespace=unit';
    const expected = (origins: number) => ({
      [`tiered_cache_reads_total{${L},result=miss,tier=memory}`]: 2,
      [`tiered_cache_origin_duration_seconds_count{${L},outcome=ok}`]: origins,
      [`tiered_cache_leases_total{${L},outcome=acquired}`]: origins,
    });
    expect(await seriesOf(registry)).toMatchObject(expected(1));
    // Either handle may go: the other still counts.
    await again.detach();
    await cache.get('k2');
    await cache.getOrSet('g2', () => 2, { ttl: 1000 });
    expect(await seriesOf(registry)).toMatchObject({
      ...expected(2),
      [`tiered_cache_reads_total{${L},result=miss,tier=memory}`]: 4,
    });
  });

  it('drops the observed series of a namespace once its last store detaches', async () => {
    const registry = new Registry();
    const [a, b] = await Promise.all(
      ['one', 'two'].map((namespace) => observed({ namespace, registry })),
    );
    for (const { cache } of [a, b]) await cache.getOrSet('k', () => 1, { ttl: 1000 });
    const count = (ns: string) =>
      `tiered_cache_origin_duration_seconds_count{namespace=${ns},outcome=ok}`;
    expect(await seriesOf(registry)).toMatchObject({ [count('one')]: 1, [count('two')]: 1 });
    await a.cache.onApplicationShutdown();
    const s = await seriesOf(registry);
    expect(s[count('one')]).toBeUndefined();
    expect(s[count('two')]).toBe(1);
  });

  it('uses prom-client’s default registry by default, with the prefix given', async () => {
    const store = createTieredStore({ namespace: 'dflt', tiers: [{ type: 'memory' }] });
    const metrics = await collectMetrics(store);
    const custom = await collectMetrics(store, { prefix: 'svc_cache_' });
    try {
      expect(register.getSingleMetric('tiered_cache_reads_total')).toBeDefined();
      expect(register.getSingleMetric('svc_cache_reads_total')).toBeDefined();
    } finally {
      await metrics.detach();
      await custom.detach();
    }
    expect(register.getSingleMetric('tiered_cache_reads_total')).toBeUndefined();
    expect(register.getSingleMetric('svc_cache_reads_total')).toBeUndefined();
  });

  it('registers again in a registry that was cleared', async () => {
    const registry = new Registry();
    const { cache } = await observed({ registry });
    registry.clear();
    const store = createTieredStore({ namespace: 'again', tiers: [{ type: 'memory' }] });
    const again = await collectMetrics(store, { registry });
    opened.push({ close: () => again.detach() });
    await cache.get('k');
    expect(await seriesOf(registry)).toMatchObject({
      'tiered_cache_reads_total{namespace=unit,result=miss,tier=memory}': 1,
    });
  });

  it('refuses a registry holding a metric of one of its names that is not its own', async () => {
    const registry = new Registry();
    new Counter({ name: 'tiered_cache_reads_total', help: 'mine', registers: [registry] });
    const store = createTieredStore({ tiers: [{ type: 'memory' }] });
    const err = await collectMetrics(store, { registry }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as InvalidOptionError).message).toBe(
      'metrics.prefix: the registry already holds a metric named "tiered_cache_reads_total" that is not this library\'s: choose another prefix (or registry)',
    );
    const other: CacheMetrics = await collectMetrics(store, { registry, prefix: 'mine_' });
    await other.detach();
    expect(registry.getMetricsAsArray().map((m) => m.name)).toEqual(['tiered_cache_reads_total']);
  });
});

describe('the metrics option', () => {
  /** The error `fn` throws, checked to be an {@link InvalidOptionError}. */
  function optionError(fn: () => unknown): InvalidOptionError {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidOptionError);
      return err as InvalidOptionError;
    }
    throw new Error('expected an InvalidOptionError');
  }

  it('accepts true, false, nothing and { registry, prefix }', () => {
    const registry = new Registry();
    expect(metricsConfig(undefined)).toBeUndefined();
    expect(metricsConfig(false)).toBeUndefined();
    expect(metricsConfig(true)).toEqual({ registry: undefined, prefix: 'tiered_cache_' });
    expect(metricsConfig({ registry, prefix: 'app:cache_' })).toEqual({
      registry,
      prefix: 'app:cache_',
    });
    // The store takes it among the module's own options.
    const options = { metrics: true } as TieredStoreOptions;
    expect(() => new TieredStore(options, MODULE_ONLY_OPTIONS)).not.toThrow();
  });

  it.each([
    ['yes', 'metrics: must be true, false or an object { registry?, prefix? }, got "yes"'],
    [null, 'metrics: must be true, false or an object { registry?, prefix? }, got null'],
    [{ prefx: 'a_' }, 'metrics.prefx: unknown option (did you mean "prefix"?)'],
    [
      { prefix: '1abc' },
      'metrics.prefix: "1abc" is not a metric name prefix (letters, digits, "_" and ":", not starting with a digit)',
    ],
    [
      { prefix: 3 },
      'metrics.prefix: number is not a metric name prefix (letters, digits, "_" and ":", not starting with a digit)',
    ],
    [
      { registry: { registerMetric() {} } },
      'metrics.registry: must be a prom-client Registry; object lacks getSingleMetric, removeSingleMetric',
    ],
  ])('refuses %p, naming the option', (value, message) => {
    const err = optionError(() => metricsConfig(value));
    expect(err.message).toBe(message);
    // The service checks it when it is made (at bootstrap).
    const store = createTieredStore({ tiers: [{ type: 'memory' }] });
    expect(() => new TieredCache(store, { metrics: value as never })).toThrow(message);
  });

  it('collectMetrics checks its options too', async () => {
    const store = createTieredStore({ tiers: [{ type: 'memory' }] });
    await expect(collectMetrics(store, { prefix: 'a b' })).rejects.toThrow(
      /^metrics\.prefix: "a b" is not a metric name prefix/,
    );
  });
});

/**
 * Last in this file: from here on prom-client's import fails, as a missing package's would (the
 * mock holds for every later import of it).
 */
describe('without prom-client installed', () => {
  it('collectMetrics and the module option fail with E_MISSING_PEER naming the package', async () => {
    jest.unstable_mockModule('prom-client', () => {
      throw Object.assign(new Error("Cannot find module 'prom-client'"), {
        code: 'MODULE_NOT_FOUND',
      });
    });
    const store = createTieredStore({ tiers: [{ type: 'memory' }] });
    const missing = {
      code: 'E_MISSING_PEER',
      message: expect.stringContaining('npm install prom-client'),
    };
    await expect(collectMetrics(store)).rejects.toMatchObject(missing);
    const cache = new TieredCache(store, { metrics: true });
    await expect(cache.onModuleInit()).rejects.toMatchObject(missing);
    await store.disconnect();
  });
});

/** A broker in process: a transport of its own (the Redis one is tested on a real Redis). */
class InProcessChannel {
  private readonly subscribers: TransportHandlers[] = [];
  /** Publishes rejected, as by a broker that refuses them. */
  failing = false;

  transport(): InvalidationTransport {
    return {
      publish: async (_channel, payload) => {
        if (this.failing) throw new Error('refused');
        await sleep(0);
        for (const h of this.subscribers) h.message(payload);
      },
      subscribe: async (_channel, handlers) => {
        this.subscribers.push(handlers);
        handlers.state(true);
      },
      close: async () => undefined,
    };
  }

  /** Every subscription goes down. */
  down(): void {
    for (const h of this.subscribers) h.state(false, 'channel down');
  }
}
