import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AlwaysOffSampler,
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTieredStore, TieredCache, type CacheLookup, type GetOrSetOptions } from '../../lib';
import {
  CacheTracing,
  TRACER_NAME,
  traceKeyHash,
  type CacheTracingOptions,
} from '../../lib/telemetry/tracing';
import { withFaults } from '../support/fault-tier';
import { eventually } from '../support/eventually';
import { ManualClock } from '../support/manual-clock';
import { MapTier } from '../support/map-tier';

/**
 * OpenTelemetry spans of read-through calls, over the memory tier and an in-process far tier,
 * recorded by the SDK's in-memory exporter. TieredCache is built with the `tracing` option, as
 * the module builds it; its CacheTracing is attached by hand (the module does it on init).
 */

/** Registers the AsyncLocalStorage context manager and, unless `provider: false`, an SDK. */
function registerOtel(options: { provider?: boolean; sampled?: boolean } = {}) {
  const manager = new AsyncLocalStorageContextManager();
  context.setGlobalContextManager(manager.enable());
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(exporter)],
    ...(options.sampled === false ? { sampler: new AlwaysOffSampler() } : {}),
  });
  if (options.provider !== false) trace.setGlobalTracerProvider(provider);
  return { exporter, provider, spans: () => exporter.getFinishedSpans() };
}

const open: Array<{ tracing: CacheTracing; close(): Promise<void> }> = [];

/** A store over memory and a far `MapTier`, its TieredCache, and a CacheTracing attached to it. */
async function traced(options: CacheTracingOptions = {}, grace = 0) {
  const clock = new ManualClock(1_000_000);
  const far = withFaults(new MapTier({ clock, name: 'far' }));
  const store = createTieredStore({ clock, namespace: 'shop', tiers: [{ type: 'memory' }, far] });
  await store.connect();
  const cache = new TieredCache(store, { clock, herd: { grace }, tracing: options });
  const tracing = (cache as unknown as { tracing: CacheTracing }).tracing;
  await tracing.attach(store);
  open.push({ tracing, close: () => store.disconnect() });
  const getOrSet = <T>(
    key: string,
    factory: () => T | Promise<T>,
    opts: GetOrSetOptions<T> = { ttl: 1000 },
  ): Promise<CacheLookup<T>> => cache.lookup(key, factory, opts);
  return { clock, far, store, cache, tracing, getOrSet };
}

const named = (spans: readonly ReadableSpan[], name: string) =>
  spans.filter((s) => s.name === name);
const childrenOf = (spans: readonly ReadableSpan[], parent: ReadableSpan) =>
  spans.filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId);
const ms = ([s, ns]: readonly [number, number]) => s * 1000 + ns / 1e6;

/** Everything a span tells an exporter, as text (to look for a key in it). */
function exported(span: ReadableSpan): string {
  const { name, attributes, events, status, links } = span;
  return JSON.stringify({ name, attributes, events, status, links });
}

/** Resolves once `check` holds (a background refresh's spans end after its caller's). */
async function until(check: () => boolean): Promise<void> {
  expect(await eventually(check, 10_000)).toBe(true);
}

afterEach(async () => {
  for (const { tracing, close } of open.splice(0)) {
    tracing.detach();
    await close();
  }
  trace.disable();
  context.disable();
  jest.restoreAllMocks();
});

describe('CacheTracing spans', () => {
  it('a miss: a cache.get_or_set span, with a child per far-tier call and one cache.origin', async () => {
    const { spans } = registerOtel();
    const { getOrSet } = await traced();
    expect(await getOrSet('product:7', async () => ({ id: 7 }))).toMatchObject({
      value: { id: 7 },
      status: 'MISS',
      stored: true,
    });
    const [root, ...more] = named(spans(), 'cache.get_or_set');
    expect(more).toEqual([]);
    expect(root.kind).toBe(SpanKind.INTERNAL);
    expect(root.parentSpanContext).toBeUndefined();
    expect(root.instrumentationScope.name).toBe(TRACER_NAME);
    expect(root.attributes).toEqual({
      'cache.namespace': 'shop',
      'cache.status': 'MISS',
      'cache.stored': true,
    });
    expect(root.status.code).toBe(SpanStatusCode.UNSET);
    const children = childrenOf(spans(), root);
    expect(children).toHaveLength(spans().length - 1);
    // Read, lease, re-check, origin call, lease check, write, release: all children.
    expect(new Set(children.map((s) => s.name))).toEqual(
      new Set([
        'cache.tier.get',
        'cache.tier.lease',
        'cache.origin',
        'cache.tier.setEntry',
        'cache.tier.lease_release',
      ]),
    );
    const origin = named(children, 'cache.origin');
    expect(origin).toHaveLength(1);
    expect(origin[0].attributes).toEqual({ 'cache.result': 'ok' });
    for (const span of children) {
      expect(span.kind).toBe(SpanKind.INTERNAL);
      expect(span.spanContext().traceId).toBe(root.spanContext().traceId);
      if (span.name !== 'cache.origin') {
        expect(span.attributes).toEqual({
          'cache.tier': 'far',
          'cache.operation': expect.any(String),
          'cache.result': 'ok',
        });
        // Named after the operation, spaces as `_` (`lease release`: `cache.tier.lease_release`).
        const op = String(span.attributes['cache.operation']);
        expect(span.name).toBe(`cache.tier.${op.replaceAll(' ', '_')}`);
      }
      expect(ms(span.duration)).toBeGreaterThanOrEqual(0);
      // Each span is anchored to the wall clock to the millisecond when it starts.
      expect(ms(span.startTime)).toBeGreaterThanOrEqual(ms(root.startTime) - 1);
      expect(ms(span.endTime)).toBeLessThanOrEqual(ms(root.endTime) + 1);
    }
    // The first read of the far tier comes before the origin call.
    const firstRead = named(children, 'cache.tier.get')[0];
    expect(ms(firstRead.endTime)).toBeLessThanOrEqual(ms(origin[0].startTime) + 1);
  });

  it('a fresh hit on the memory tier: no span; one (status HIT, no children) with localHits', async () => {
    const { spans, exporter } = registerOtel();
    const { getOrSet } = await traced();
    await getOrSet('k', () => 1);
    exporter.reset();
    expect(await getOrSet('k', () => 2)).toMatchObject({ value: 1, status: 'HIT', stored: true });
    expect(spans()).toEqual([]);

    const all = await traced({ localHits: true });
    await all.getOrSet('k', () => 1);
    exporter.reset();
    expect((await all.getOrSet('k', () => 2)).value).toBe(1);
    expect(spans()).toHaveLength(1);
    expect(spans()[0].name).toBe('cache.get_or_set');
    expect(spans()[0].attributes['cache.status']).toBe('HIT');
  });

  it('a memory-tier hit that may refresh early has its span, and so has the refresh', async () => {
    const { spans, exporter } = registerOtel();
    const { clock, getOrSet } = await traced();
    const timed = async () => {
      clock.advance(100); // a compute time, which early refresh weighs
      return 'v1';
    };
    await getOrSet('k', timed, { ttl: 1000, earlyRefresh: 1e9 });
    exporter.reset();
    const found = await getOrSet('k', () => 'v2', { ttl: 1000, earlyRefresh: 1e9 });
    expect(found).toMatchObject({ value: 'v1', status: 'HIT', stored: true });
    await until(() => named(spans(), 'cache.origin').length === 1);
    const [root] = named(spans(), 'cache.get_or_set');
    expect(root.attributes['cache.status']).toBe('HIT');
    expect(named(childrenOf(spans(), root), 'cache.origin')).toHaveLength(1);
  });

  it('a hit on the far tier: one cache.tier.get child, no origin', async () => {
    const { spans, exporter } = registerOtel();
    const { store, getOrSet } = await traced();
    await store.set('k', 'far value', 1000);
    (store as unknown as { slots: Array<{ tier: { clear(): void } }> }).slots[0].tier.clear();
    exporter.reset();
    expect(await getOrSet('k', () => 'computed')).toMatchObject({
      value: 'far value',
      status: 'HIT',
    });
    const [root] = named(spans(), 'cache.get_or_set');
    expect(childrenOf(spans(), root).map((s) => s.name)).toEqual(['cache.tier.get']);
  });

  it('a stale serve: status STALE; the refresh it starts shows as its children, ending after it', async () => {
    const { spans, exporter } = registerOtel();
    const { clock, getOrSet } = await traced({}, 60_000);
    await getOrSet('k', () => 'v1');
    clock.advance(1001);
    exporter.reset();
    let release = () => undefined as void;
    const slow = new Promise<void>((resolve) => (release = resolve));
    const found = await getOrSet('k', async () => {
      await slow;
      return 'v2';
    });
    expect(found).toMatchObject({ value: 'v1', status: 'STALE' });
    const [root] = named(spans(), 'cache.get_or_set');
    expect(root.attributes['cache.status']).toBe('STALE');
    // The refresh is held: its origin span does not exist yet, the lookup's has ended.
    expect(named(spans(), 'cache.origin')).toEqual([]);
    release();
    await until(() => named(spans(), 'cache.origin').length === 1);
    const [origin] = named(spans(), 'cache.origin');
    expect(origin.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    // Each span is anchored to the wall clock when it starts, so two spans' times agree to the
    // millisecond, not below (0.2 ms apart was seen): the same allowance as the miss test above.
    expect(ms(origin.endTime)).toBeGreaterThanOrEqual(ms(root.endTime) - 1);
  });

  it('a factory that throws: error status and error.type on both spans, no message recorded', async () => {
    const { spans } = registerOtel();
    const { getOrSet } = await traced();
    const err = await getOrSet('secret-key', async () => {
      throw new TypeError('database down for secret-key');
    }).catch((e: unknown) => e);
    expect(err).toEqual(new TypeError('database down for secret-key'));
    const [root] = named(spans(), 'cache.get_or_set');
    expect(root.status).toEqual({ code: SpanStatusCode.ERROR });
    expect(root.attributes['error.type']).toBe('TypeError');
    const [origin] = named(spans(), 'cache.origin');
    expect(origin.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(origin.attributes).toEqual({ 'cache.result': 'error' });
    expect(origin.status.code).toBe(SpanStatusCode.ERROR);
    for (const span of spans()) {
      expect(span.events).toEqual([]);
      expect(exported(span)).not.toContain('secret-key');
      expect(exported(span)).not.toContain('database down');
    }
  });

  it('a far tier that fails: its span has result error and an error status; the lookup goes on', async () => {
    const { spans } = registerOtel();
    const { far, getOrSet } = await traced();
    far.fail('get', { times: 1 });
    expect((await getOrSet('k', () => 1)).status).toBe('MISS');
    const [root] = named(spans(), 'cache.get_or_set');
    expect(root.status.code).toBe(SpanStatusCode.UNSET);
    const [failed, ...others] = named(childrenOf(spans(), root), 'cache.tier.get');
    expect(failed.attributes).toMatchObject({ 'cache.tier': 'far', 'cache.result': 'error' });
    expect(failed.status.code).toBe(SpanStatusCode.ERROR);
    for (const span of others) expect(span.attributes['cache.result']).toBe('ok');
  });

  it('keys: absent by default; with keys: true, only a short SHA-256 of them', async () => {
    const { spans, exporter } = registerOtel();
    const key = 'user:42@example.com';
    const first = await traced();
    await first.getOrSet(key, () => 1);
    for (const span of spans()) {
      expect(span.attributes['cache.key.hash']).toBeUndefined();
      expect(exported(span)).not.toContain('user:42');
    }
    exporter.reset();
    const hashed = await traced({ keys: true });
    await hashed.getOrSet(key, () => 1);
    const hash = createHash('sha256').update(key).digest('hex').slice(0, 16);
    expect(traceKeyHash(key)).toBe(hash);
    expect(named(spans(), 'cache.get_or_set')[0].attributes['cache.key.hash']).toBe(hash);
    expect(named(spans(), 'cache.origin')[0].attributes['cache.key.hash']).toBe(hash);
    for (const span of spans()) expect(exported(span)).not.toContain('user:42');
  });

  it('spans started by the factory are children of cache.get_or_set, itself a child of the caller', async () => {
    const { spans, provider } = registerOtel();
    const { getOrSet } = await traced();
    const app = provider.getTracer('app');
    await app.startActiveSpan('GET /products/7', async (request) => {
      await getOrSet('product:7', () =>
        app.startActiveSpan('SELECT products', async (query) => {
          await sleep(1);
          query.end();
          return 7;
        }),
      );
      request.end();
    });
    const [request] = named(spans(), 'GET /products/7');
    const [root] = named(spans(), 'cache.get_or_set');
    const [query] = named(spans(), 'SELECT products');
    expect(root.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(query.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(named(childrenOf(spans(), root), 'cache.origin')).toHaveLength(1);
  });

  it('concurrent lookups of different keys each get their own children', async () => {
    const { spans } = registerOtel();
    const { far, getOrSet } = await traced({ keys: true });
    far.delay('get', 5);
    const keys = ['a', 'b', 'c', 'd'];
    await Promise.all(keys.map((k) => getOrSet(k, async () => k)));
    const roots = named(spans(), 'cache.get_or_set');
    expect(roots).toHaveLength(4);
    for (const root of roots) {
      const children = childrenOf(spans(), root);
      const origins = named(children, 'cache.origin');
      expect(origins).toHaveLength(1);
      expect(origins[0].attributes['cache.key.hash']).toBe(root.attributes['cache.key.hash']);
      expect(named(children, 'cache.tier.get').length).toBeGreaterThanOrEqual(1);
    }
    expect(roots.reduce((n, r) => n + childrenOf(spans(), r).length, 0)).toBe(spans().length - 4);
  });

  it('plain reads and writes of the store make no spans (only lookups are traced)', async () => {
    const { spans } = registerOtel();
    const { cache, getOrSet } = await traced();
    await getOrSet('warm', () => 1); // tracing found the provider: the store's events are listened to
    const before = spans().length;
    await cache.set('k', 1);
    await cache.get('other');
    expect(spans()).toHaveLength(before);
  });

  it('a tracer given is used even without a registered provider', async () => {
    const { spans, provider } = registerOtel({ provider: false });
    const { getOrSet, tracing } = await traced({ tracer: provider.getTracer('mine') });
    expect(tracing.listening).toBe(true);
    await getOrSet('k', () => 1);
    expect(spans().map((s) => s.instrumentationScope.name)).toEqual(spans().map(() => 'mine'));
    expect(named(spans(), 'cache.origin')).toHaveLength(1);
  });

  it('a sampler that drops the trace: nothing exported, no children started', async () => {
    const { spans, provider } = registerOtel({ sampled: false });
    const { getOrSet } = await traced();
    const start = jest.spyOn(provider.getTracer(TRACER_NAME), 'startSpan');
    await getOrSet('k', () => 1);
    expect(spans()).toEqual([]);
    expect(start).toHaveBeenCalledTimes(1); // the lookup's own, non-recording
  });

  it('a stale serve whose refresh fails: the STALE span stays ok, its origin child says error', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const { spans } = registerOtel();
    const { clock, getOrSet } = await traced({}, 60_000);
    await getOrSet('k', () => 'v1');
    clock.advance(1001);
    const found = await getOrSet('k', async () => {
      throw new Error('origin down');
    });
    expect(found.status).toBe('STALE');
    await until(() => warn.mock.calls.length > 0);
    const stale = named(spans(), 'cache.get_or_set').find(
      (s) => s.attributes['cache.status'] === 'STALE',
    )!;
    expect(stale.status.code).toBe(SpanStatusCode.UNSET);
    await until(() => named(childrenOf(spans(), stale), 'cache.origin').length === 1);
    expect(named(childrenOf(spans(), stale), 'cache.origin')[0].attributes['cache.result']).toBe(
      'error',
    );
  });
});

describe('CacheTracing without a tracer', () => {
  it('no provider registered: run is called directly, no span, no event listened to', async () => {
    const { spans } = registerOtel({ provider: false });
    const { store, cache, tracing } = await traced();
    expect(tracing.listening).toBe(false);
    expect(store.events.listened['tier-call']).toBe(false);
    expect(store.events.listened.origin).toBe(false);
    const pending = cache.lookup('k', () => 1, { ttl: 1000 });
    // The very promise run returned: nothing wraps it.
    expect(tracing.lookup('k', () => pending)).toBe(pending);
    await pending;
    expect(spans()).toEqual([]);
  });

  it('a provider registered later is found by the next lookup; trace.disable() is noticed', async () => {
    const { spans, exporter, provider } = registerOtel({ provider: false });
    const { store, tracing, getOrSet } = await traced();
    await getOrSet('a', () => 1);
    expect(spans()).toEqual([]);
    trace.setGlobalTracerProvider(provider);
    await getOrSet('b', () => 2);
    expect(named(spans(), 'cache.get_or_set')).toHaveLength(1);
    expect(named(spans(), 'cache.origin')).toHaveLength(1);
    expect(tracing.listening).toBe(true);
    trace.disable();
    exporter.reset();
    await getOrSet('c', () => 3);
    expect(spans()).toEqual([]);
    expect(tracing.listening).toBe(false);
    expect(store.events.listened['tier-call']).toBe(false);
  });

  it('before attach and after detach: run is called directly', async () => {
    const { spans } = registerOtel();
    const tracing = new CacheTracing();
    const p = Promise.resolve({ value: 1, status: 'HIT' as const, stored: true });
    expect(tracing.lookup('k', () => p)).toBe(p);
    const { tracing: attached, store, getOrSet } = await traced();
    attached.detach();
    expect(attached.listening).toBe(false);
    expect(store.events.listened['tier-call']).toBe(false);
    await getOrSet('k', () => 1);
    expect(spans()).toEqual([]);
  });

  it('attach to a second store without detach fails; detach then attach works', async () => {
    registerOtel();
    const { tracing, store } = await traced();
    const other = createTieredStore();
    await expect(tracing.attach(other)).rejects.toThrow(
      'CacheTracing: attached to another store; detach() it first',
    );
    await expect(tracing.attach(store)).resolves.toBeUndefined();
    tracing.detach();
    await tracing.attach(other);
    expect(other.events.listened['tier-call']).toBe(true);
    tracing.detach();
  });
});

describe('CacheTracing options', () => {
  it.each([
    [{ tracr: {} }, 'tracing.tracr: unknown option (did you mean "tracer"?)'],
    [{ keys: 'yes' }, 'tracing.keys: yes is not true or false'],
    [
      { tracer: {} },
      'tracing.tracer: must be an OpenTelemetry Tracer (trace.getTracer(name)), got object',
    ],
    [
      { tracer: 'otel' },
      'tracing.tracer: must be an OpenTelemetry Tracer (trace.getTracer(name)), got string',
    ],
  ])('rejects %j naming the option', (options, message) => {
    expect(() => new CacheTracing(options as never)).toThrow(message);
  });

  it('fromOption: none for undefined and false, the defaults for true, else the options', () => {
    expect(CacheTracing.fromOption(undefined)).toBeUndefined();
    expect(CacheTracing.fromOption(false)).toBeUndefined();
    expect(CacheTracing.fromOption(true)).toBeInstanceOf(CacheTracing);
    expect(CacheTracing.fromOption({ keys: true })).toBeInstanceOf(CacheTracing);
    expect(() => CacheTracing.fromOption('on' as never)).toThrow(
      'tracing: must be true, false or an object { tracer?, keys?, localHits? }, got string',
    );
    expect(() => CacheTracing.fromOption({ key: true } as never, 'cache.tracing')).toThrow(
      'cache.tracing.key: unknown option (did you mean "keys"?)',
    );
  });
});

describe('without @opentelemetry/api installed', () => {
  it('attach() rejects with E_MISSING_PEER naming the option and the package', async () => {
    // Last in this file: from here on, importing the API fails as a missing package's would.
    jest.unstable_mockModule('@opentelemetry/api', () => {
      throw Object.assign(new Error("Cannot find module '@opentelemetry/api'"), {
        code: 'MODULE_NOT_FOUND',
      });
    });
    const tracing = CacheTracing.fromOption(true, 'cache.tracing')!;
    const err = await tracing.attach(createTieredStore()).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'E_MISSING_PEER',
      message: 'cache.tracing needs the @opentelemetry/api package: npm install @opentelemetry/api',
    });
    // Not left attached to the first store: a second one gets the same error.
    await expect(tracing.attach(createTieredStore())).rejects.toMatchObject({
      code: 'E_MISSING_PEER',
    });
  });
});
