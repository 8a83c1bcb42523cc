import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import {
  TieredCache,
  TieredStore,
  type CacheLookup,
  type TieredCacheModuleOptions,
  type TierOptions,
} from '../../lib';
import { MODULE_ONLY_OPTIONS } from '../../lib/nest/tiered-cache.options';
import { CacheTracing } from '../../lib/telemetry/tracing';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import { eventually } from '../support/eventually';

/**
 * OpenTelemetry spans of read-through calls over real servers (memory → memcached → Cassandra):
 * each remote tier call is a child span of its `cache.get_or_set`, named after the operation,
 * with the tier's name and a real, plausible duration.
 */

const servers = testServers();
const keyspace = uniqueName('tracing').toLowerCase();
const memcached: TierOptions = { type: 'memcached', servers: servers.memcached };
const cassandra: TierOptions = { type: 'cassandra', ...servers.cassandra, keyspace };
dropKeyspaceAfterAll(keyspace);

const ms = ([s, ns]: readonly [number, number]) => s * 1000 + ns / 1e6;
const named = (spans: readonly ReadableSpan[], name: string) =>
  spans.filter((s) => s.name === name);
/** Resolves once `check` holds. */
async function until(check: () => boolean): Promise<void> {
  expect(await eventually(check, 10_000)).toBe(true);
}
const childrenOf = (spans: readonly ReadableSpan[], parent: ReadableSpan) =>
  spans.filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId);

describe('tracing over real servers', () => {
  const exporter = new InMemorySpanExporter();
  const open: Array<{ cache: TieredCache; tracing: CacheTracing }> = [];
  let namespace: string;

  /** One instance: its own store (and memory tier) over the shared servers, traced. */
  async function instance(tiers: TierOptions[] = [{ type: 'memory' }, memcached, cassandra]) {
    const options: TieredCacheModuleOptions = { tiers, namespace };
    const cache = new TieredCache(new TieredStore(options, MODULE_ONLY_OPTIONS), options);
    await cache.store.connect();
    const tracing = new CacheTracing();
    await tracing.attach(cache.store);
    open.push({ cache, tracing });
    const getOrSet = <T>(key: string, factory: () => Promise<T>): Promise<CacheLookup<T>> =>
      tracing.lookup(key, () => cache.lookup(key, factory, { ttl: 60_000 }));
    return { cache, getOrSet };
  }

  beforeEach(() => {
    namespace = uniqueName('tracing');
    const manager = new AsyncLocalStorageContextManager();
    context.setGlobalContextManager(manager.enable());
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
  });

  afterEach(async () => {
    for (const { cache, tracing } of open.splice(0)) {
      tracing.detach();
      await cache.store.disconnect();
    }
    exporter.reset();
    trace.disable();
    context.disable();
  });

  /** Every child is a timed call within its parent (to the millisecond the SDK anchors on). */
  function expectNested(root: ReadableSpan, children: readonly ReadableSpan[]): void {
    for (const span of children) {
      expect(span.spanContext().traceId).toBe(root.spanContext().traceId);
      expect(ms(span.duration)).toBeGreaterThanOrEqual(0);
      expect(ms(span.duration)).toBeLessThan(ms(root.duration) + 1);
      expect(ms(span.startTime)).toBeGreaterThanOrEqual(ms(root.startTime) - 1);
      expect(ms(span.endTime)).toBeLessThanOrEqual(ms(root.endTime) + 1);
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
    }
  }

  it('a miss: reads of memcached and Cassandra, the lease, the origin and the writes, nested', async () => {
    const { getOrSet } = await instance();
    const found = await getOrSet('product:7', async () => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return { id: 7 };
    });
    expect(found).toMatchObject({ value: { id: 7 }, status: 'MISS', stored: true });
    // The write to Cassandra, past the lease tier, goes on after the call has answered.
    const tierCall = (s: ReadableSpan) =>
      `${s.attributes['cache.tier']} ${s.attributes['cache.operation']}`;
    await until(() =>
      exporter.getFinishedSpans().some((s) => tierCall(s) === 'cassandra setEntry'),
    );
    const spans = exporter.getFinishedSpans();
    const [root, ...more] = named(spans, 'cache.get_or_set');
    expect(more).toEqual([]);
    expect(root.attributes).toEqual({
      'cache.namespace': namespace,
      'cache.status': 'MISS',
      'cache.stored': true,
    });
    const children = childrenOf(spans, root);
    expect(children).toHaveLength(spans.length - 1);
    const background = children.filter((s) => tierCall(s) === 'cassandra setEntry');
    expect(background).toHaveLength(1);
    expectNested(
      root,
      children.filter((s) => !background.includes(s)),
    );
    expect(ms(background[0].startTime)).toBeLessThanOrEqual(ms(root.endTime) + 1);
    expect(ms(background[0].duration)).toBeGreaterThanOrEqual(0);
    // The memory tier answers in process: no span. Each remote tier was read, then written.
    const calls = children.filter((s) => s.name.startsWith('cache.tier.')).map(tierCall);
    expect(calls).not.toContainEqual(expect.stringMatching(/^memory /));
    for (const tier of ['memcached', 'cassandra']) {
      expect(calls).toContain(`${tier} get`);
      expect(calls).toContain(`${tier} setEntry`);
    }
    expect(calls).toContain('memcached lease');
    for (const span of children.filter((s) => s.name.startsWith('cache.tier.')))
      expect(span.attributes['cache.result']).toBe('ok');
    const [origin, ...moreOrigins] = named(children, 'cache.origin');
    expect(moreOrigins).toEqual([]);
    expect(ms(origin.duration)).toBeGreaterThanOrEqual(19);
    // The first reads come before the origin call, the writes after it.
    const first = (name: string, tier: string) =>
      children.find((s) => s.name === name && s.attributes['cache.tier'] === tier)!;
    expect(ms(first('cache.tier.get', 'cassandra').endTime)).toBeLessThanOrEqual(
      ms(origin.startTime) + 1,
    );
    expect(ms(first('cache.tier.setEntry', 'cassandra').startTime)).toBeGreaterThanOrEqual(
      ms(origin.endTime) - 1,
    );
  });

  it('a hit on Cassandra: memcached read (a miss), Cassandra read, no origin', async () => {
    const farOnly = await instance([cassandra]);
    await farOnly.cache.set('k', 'from cassandra', 60_000);
    exporter.reset();
    const { getOrSet } = await instance();
    const found = await getOrSet('k', async () => 'computed');
    expect(found).toMatchObject({ value: 'from cassandra', status: 'HIT' });
    const spans = exporter.getFinishedSpans();
    const [root] = named(spans, 'cache.get_or_set');
    expect(root.attributes['cache.status']).toBe('HIT');
    const children = childrenOf(spans, root);
    expect(named(children, 'cache.origin')).toEqual([]);
    const reads = named(children, 'cache.tier.get');
    expect(reads.map((s) => s.attributes['cache.tier'])).toEqual(['memcached', 'cassandra']);
    expectNested(root, reads);
    expect(ms(reads[0].endTime)).toBeLessThanOrEqual(ms(reads[1].startTime) + 1);
  });

  it('a hit on the memory tier: one span, no children', async () => {
    const { getOrSet } = await instance();
    await getOrSet('k', async () => 1);
    exporter.reset();
    expect((await getOrSet('k', async () => 2)).status).toBe('HIT');
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(['cache.get_or_set']);
  });
});
