import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { createTieredStore, TieredCache, type TieredCacheModuleOptions } from '../../lib';
import { MapTier } from '../support/map-tier';

/** The module's `tracing` option, wired through `TieredCache` (the spans themselves: tracing.spec.ts). */
describe('the tracing option', () => {
  afterEach(() => {
    trace.disable();
    context.disable();
  });

  async function cacheWith(options: TieredCacheModuleOptions): Promise<TieredCache> {
    const store = createTieredStore({ tiers: [{ type: 'memory' }, new MapTier()] });
    const cache = new TieredCache(store, options);
    await cache.onModuleInit();
    return cache;
  }

  it('true: every getOrSet but a fresh memory hit is a span once a provider is registered, none without', async () => {
    const exporter = new InMemorySpanExporter();
    const off = await cacheWith({ tracing: true, logErrors: false });
    await off.getOrSet('k', async () => 1);
    await off.onApplicationShutdown();
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
    expect(exporter.getFinishedSpans()).toEqual([]);
    const on = await cacheWith({ tracing: true, logErrors: false });
    expect(await on.getOrSet('k', async () => 1)).toBe(1);
    expect(await on.getOrSet('k', async () => 2)).toBe(1);
    const spans = exporter.getFinishedSpans();
    const lookups = spans.filter((s) => s.name === 'cache.get_or_set');
    expect(lookups.map((s) => s.attributes['cache.status'])).toEqual(['MISS']);
    expect(spans.some((s) => s.name === 'cache.origin')).toBe(true);
    await on.onApplicationShutdown();
    // With localHits, the memory hit too.
    exporter.reset();
    const all = await cacheWith({ tracing: { localHits: true }, logErrors: false });
    await all.getOrSet('k', async () => 1);
    await all.getOrSet('k', async () => 2);
    expect(
      exporter
        .getFinishedSpans()
        .filter((s) => s.name === 'cache.get_or_set')
        .map((s) => s.attributes['cache.status']),
    ).toEqual(['MISS', 'HIT']);
    await all.onApplicationShutdown();
    // Without the option, no span.
    exporter.reset();
    const plain = await cacheWith({ logErrors: false });
    await plain.getOrSet('k', async () => 1);
    expect(exporter.getFinishedSpans()).toEqual([]);
    await plain.onApplicationShutdown();
  });

  it.each([
    [{ tracing: 'yes' }, 'tracing'],
    [{ tracing: { tracr: {} } }, 'tracing.tracr: unknown option (did you mean "tracer"?)'],
  ])('%j is refused, naming it', (options, message) => {
    const store = createTieredStore({ tiers: [{ type: 'memory' }] });
    expect(() => new TieredCache(store, options as never)).toThrow(message);
  });
});
