import { setImmediate as nextTurn } from 'node:timers/promises';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { createCache } from 'cache-manager';
import { LRUCache } from 'lru-cache';
import { Registry } from 'prom-client';
import { TieredCache, TieredStore } from '../lib';
import { collectMetrics, type CacheMetrics } from '../lib/telemetry/prometheus';
import { CacheTracing, type CacheTracingOptions } from '../lib/telemetry/tracing';
import { PRODUCT, productKeys } from './fixtures';
import { compare, fmt, load, stats, table, type Contender, type Result } from './measure';

/**
 * Observability on the hit path (the issue's benchmark): a memory-tier hit (`store.get`) and a
 * `getOrSet` hit with Prometheus metrics and OpenTelemetry tracing on, against the same hit with
 * them off, in one run; raw lru-cache `get` and cache-manager's `wrap` hit as references.
 *
 * The goal: throughput on / off ≥ GOAL. Each ratio is ops/s on / ops/s off per round (both ran
 * back to back in it, rounds alternate their order), and the median of the rounds is the figure;
 * the spread is the rounds' min–max.
 *
 * - metrics on: `collectMetrics(store, { registry })` into a fresh prom-client Registry per store
 *   (counters read at scrape time; only events off the hit path listened to);
 * - tracing on: the `tracing` option of TieredCache (its CacheTracing attached), while an SDK is
 *   registered (a `BasicTracerProvider` with a `BatchSpanProcessor` whose exporter counts the
 *   spans and drops them, and an `AsyncLocalStorageContextManager`). The SDK is registered for
 *   the traced contender's runs only and unregistered after each (`trace.disable()`,
 *   `context.disable()`), so that the others do not pay for its context manager (in Node 20 an
 *   enabled AsyncLocalStorage adds work to every promise of the process). By default a fresh
 *   memory-tier hit gets no span; with `localHits: true` every lookup does (printed, not a goal);
 * - tracing registered-but-off: `CacheTracing` attached, no SDK registered (its no-tracer path).
 */
const GOAL = 0.85;
const KEYS = productKeys(1000);
const TTL = 10 * 60_000;
const ROUNDS = 15;
/** store.get hits per contender per round. */
const GET_OPS = 200_000;
/** getOrSet hits per contender per round. */
const GET_OR_SET_OPS = 50_000;
/** Scrapes timed (after SCRAPE_WARMUP). */
const SCRAPES = 300;
const SCRAPE_WARMUP = 30;

interface Ratio {
  label: string;
  on: string;
  off: string;
  /** Counted in the verdict (else printed for information). */
  goal: boolean;
}

interface Figure {
  label: string;
  median: number;
  min: number;
  max: number;
}

const figures: Figure[] = [];

export async function operations(): Promise<boolean> {
  figures.length = 0;
  console.log(
    `\n# operations: metrics and tracing on vs off, memory tier (copies, the default); ${KEYS.length} keys read round-robin; ratio = throughput on / off, median of ${ROUNDS} alternated paired rounds [min–max]; goal ≥ ${GOAL}×`,
  );
  console.log(
    `  ${load()}; figures compare within this run only, and a busy machine widens the spread`,
  );
  const sdk = new Sdk();
  try {
    await storeGetHit(sdk);
    const scrapeStore = await getOrSetHit(sdk);
    await scrapeCost(scrapeStore);
  } finally {
    sdk.off();
    await sdk.provider.shutdown();
  }
  console.log(`\n  ${load()}`);
  return verdict();
}

// ---------------------------------------------------------------- the SDK

/**
 * An OpenTelemetry SDK as an app registers one (a tracer provider with a batch span processor,
 * an AsyncLocalStorage context manager), whose exporter counts the spans and drops them. `on()`
 * registers it globally, `off()` unregisters it.
 */
class Sdk {
  exported = 0;
  readonly provider: BasicTracerProvider;
  private readonly manager = new AsyncLocalStorageContextManager();
  private registered = false;

  constructor() {
    const exporter: SpanExporter = {
      export: (spans, done) => {
        this.exported += spans.length;
        done({ code: 0 }); // ExportResultCode.SUCCESS
      },
      shutdown: () => Promise.resolve(),
    };
    this.provider = new BasicTracerProvider({
      spanProcessors: [new BatchSpanProcessor(exporter)],
    });
  }

  on(): void {
    if (this.registered) return;
    if (!context.setGlobalContextManager(this.manager.enable()))
      throw new Error('a context manager is already registered');
    if (!trace.setGlobalTracerProvider(this.provider))
      throw new Error('a tracer provider is already registered');
    this.registered = true;
  }

  off(): void {
    if (!this.registered) return;
    trace.disable();
    context.disable();
    this.registered = false;
  }

  /** `run` with the SDK registered while it runs. */
  around(run: Contender['run']): Contender['run'] {
    return async (ops) => {
      this.on();
      try {
        await run(ops);
      } finally {
        this.off();
      }
    };
  }

  /** Spans exported so far, the processor's buffer flushed. */
  async flushed(): Promise<number> {
    await this.provider.forceFlush();
    return this.exported;
  }
}

/**
 * `ops` sequential awaited calls of `call` over KEYS round-robin (a miss throws), with a turn of
 * the event loop after each pass over the keys, as a server has between requests (the store's
 * clock moves on only then).
 */
function hits(call: (key: string) => unknown): (ops: number) => Promise<void> {
  return async (ops) => {
    for (let i = 0; i < ops; i++) {
      const j = i % KEYS.length;
      if ((await call(KEYS[j])) === undefined) throw new Error('benchmark miss');
      if (j === KEYS.length - 1) await nextTurn();
    }
  };
}

/** A memory-only cache (copies, entries kept), without Nest DI. */
/** A TieredCache over the memory tier; with `tracing`, its CacheTracing attached as on init. */
async function memoryCache(tracing?: CacheTracingOptions): Promise<TieredCache> {
  const store = { tiers: [{ type: 'memory' as const, ttl: 0 }] };
  const cache = new TieredCache(new TieredStore(store), { ...store, tracing });
  await cache.store.connect({ failFast: true });
  await tracingOf(cache)?.attach(cache.store);
  return cache;
}

function tracingOf(cache: TieredCache): CacheTracing | undefined {
  return (cache as unknown as { tracing: CacheTracing | undefined }).tracing;
}

// ---------------------------------------------------------------- store.get

async function storeGetHit(sdk: Sdk): Promise<void> {
  const lru = new LRUCache<string, object>({ max: 10_000 });
  for (const k of KEYS) lru.set(k, PRODUCT);
  const off = await memoryCache();
  const metrics = await memoryCache();
  const traced = await memoryCache();
  const handles: CacheMetrics[] = [];
  for (const cache of [metrics, traced])
    handles.push(await collectMetrics(cache.store, { registry: new Registry() }));
  const tracing = new CacheTracing();
  await tracing.attach(traced.store);
  for (const cache of [off, metrics, traced])
    for (const k of KEYS) await cache.store.set(k, PRODUCT, { ttl: TTL });

  const names = {
    lru: 'raw lru-cache get (awaited), reference',
    off: 'ours: metrics and tracing off',
    metrics: 'ours: metrics on',
    traced: 'ours: metrics + tracing on (SDK registered)',
  };
  const spansBefore = await sdk.flushed();
  const results = await compare(
    [
      { name: names.lru, run: hits((k) => lru.get(k)) },
      { name: names.off, run: hits((k) => off.store.get(k)) },
      { name: names.metrics, run: hits((k) => metrics.store.get(k)) },
      { name: names.traced, run: sdk.around(hits((k) => traced.store.get(k))) },
    ],
    { ops: GET_OPS, rounds: ROUNDS },
  );
  const spans = (await sdk.flushed()) - spansBefore;
  table('memory-tier hit, store.get (one small object, sequential awaits)', results);
  console.log(
    `  tracing wraps getOrSet only: store.get makes no spans (${spans} exported here), so "metrics + tracing on" is "metrics on" with an SDK registered (its context manager's AsyncLocalStorage active)`,
  );
  ratios(results, [
    { label: 'store.get, metrics on', on: names.metrics, off: names.off, goal: true },
    { label: 'store.get, metrics + tracing on', on: names.traced, off: names.off, goal: true },
    {
      label: 'store.get off vs raw lru-cache (reference)',
      on: names.off,
      off: names.lru,
      goal: false,
    },
  ]);
  tracing.detach();
  await Promise.all(handles.map((h) => h.detach()));
  await Promise.all([off, metrics, traced].map((c) => c.store.disconnect()));
}

// ---------------------------------------------------------------- getOrSet

/** Returns the store with metrics on, for {@link scrapeCost} (its registry), then disconnects. */
async function getOrSetHit(sdk: Sdk): Promise<{ registry: Registry; close: () => Promise<void> }> {
  let computed = 0;
  const factory = () => {
    computed++;
    return PRODUCT;
  };
  const options = { ttl: TTL };
  const off = await memoryCache();
  const metrics = await memoryCache();
  const traced = await memoryCache({});
  const tracedAll = await memoryCache({ localHits: true });
  const idle = await memoryCache({});
  const registries = new Map<TieredCache, Registry>();
  const handles: CacheMetrics[] = [];
  for (const cache of [metrics, traced, tracedAll, idle]) {
    const registry = new Registry();
    registries.set(cache, registry);
    handles.push(await collectMetrics(cache.store, { registry }));
  }
  const cacheManager = createCache();

  // One shape for every contender: `lookup` (traced as the module's `tracing` option makes it),
  // then `.value`.
  const lookup =
    (cache: TieredCache) =>
    async (key: string): Promise<unknown> =>
      (await cache.lookup(key, factory, options)).value;
  for (const k of KEYS) {
    for (const cache of [off, metrics, traced, tracedAll, idle]) await lookup(cache)(k);
    await cacheManager.wrap(k, factory, TTL);
  }
  computed = 0;

  const names = {
    cacheManager: 'cache-manager wrap hit (default Keyv memory), reference',
    off: 'ours: metrics and tracing off',
    metrics: 'ours: metrics on',
    traced: 'ours: metrics + tracing on (SDK registered; memory hits: no span, the default)',
    tracedAll: 'ours: metrics + tracing on, localHits: a span per hit (spans dropped)',
    idle: 'ours: metrics on + tracing attached, no SDK registered',
  };
  /** Spans exported while `run` ran with the SDK registered, and the lookups it made. */
  const counted = (run: Contender['run'], seen: { lookups: number; spans: number }) =>
    sdk.around(async (ops) => {
      const before = await sdk.flushed();
      seen.lookups += ops;
      await run(ops);
      seen.spans += (await sdk.flushed()) - before;
    });
  const tracedSeen = { lookups: 0, spans: 0 };
  const allSeen = { lookups: 0, spans: 0 };
  const results = await compare(
    [
      { name: names.cacheManager, run: hits((k) => cacheManager.wrap(k, factory, TTL)) },
      { name: names.off, run: hits(lookup(off)) },
      { name: names.metrics, run: hits(lookup(metrics)) },
      { name: names.traced, run: counted(hits(lookup(traced)), tracedSeen) },
      { name: names.tracedAll, run: counted(hits(lookup(tracedAll)), allSeen) },
      { name: names.idle, run: hits(lookup(idle)) },
    ],
    { ops: GET_OR_SET_OPS, rounds: ROUNDS },
  );
  if (computed > 0) throw new Error(`getOrSet hit benchmark: ${computed} factory calls`);
  table('memory-tier hit, getOrSet (one small object, sequential awaits)', results);
  console.log(
    `  tracing on (default): ${fmt(tracedSeen.spans)} spans for ${fmt(tracedSeen.lookups)} lookups, all fresh memory hits; with localHits: ${fmt(allSeen.spans)} spans for ${fmt(allSeen.lookups)} lookups (one cache.get_or_set span per hit: a memory hit makes no tier call)`,
  );
  if (tracedSeen.spans !== 0 || allSeen.spans !== allSeen.lookups)
    console.log('  WARNING: spans exported are not what the contenders are named for');
  ratios(results, [
    { label: 'getOrSet, metrics on', on: names.metrics, off: names.off, goal: true },
    { label: 'getOrSet, metrics + tracing on', on: names.traced, off: names.off, goal: true },
    {
      label: 'getOrSet, metrics + tracing on with localHits (a span per memory hit)',
      on: names.tracedAll,
      off: names.off,
      goal: false,
    },
    {
      label: 'getOrSet, metrics on + tracing attached without SDK',
      on: names.idle,
      off: names.off,
      goal: true,
    },
    {
      label: 'getOrSet, tracing on, against metrics on (tracing alone)',
      on: names.traced,
      off: names.metrics,
      goal: false,
    },
    {
      label: 'getOrSet, tracing attached without SDK, against metrics on (no-tracer path alone)',
      on: names.idle,
      off: names.metrics,
      goal: false,
    },
    {
      label: 'getOrSet off vs cache-manager wrap (reference)',
      on: names.off,
      off: names.cacheManager,
      goal: false,
    },
  ]);
  added(results, names.traced, names.off, 'getOrSet, metrics + tracing on');
  added(results, names.tracedAll, names.off, 'getOrSet, metrics + tracing on with localHits');
  added(results, names.idle, names.off, 'getOrSet, tracing attached without SDK');
  for (const cache of [traced, tracedAll, idle]) tracingOf(cache)!.detach();
  const keep = handles.shift()!; // the metrics store's
  await Promise.all(handles.map((h) => h.detach()));
  await Promise.all([off, traced, tracedAll, idle].map((c) => c.store.disconnect()));
  await cacheManager.disconnect();
  return {
    registry: registries.get(metrics)!,
    close: async () => {
      await keep.detach();
      await metrics.store.disconnect();
    },
  };
}

// ---------------------------------------------------------------- scrape

/** `await registry.metrics()` with one store attached (after the getOrSet hits), for information. */
async function scrapeCost(target: {
  registry: Registry;
  close: () => Promise<void>;
}): Promise<void> {
  try {
    let text = '';
    for (let i = 0; i < SCRAPE_WARMUP; i++) text = await target.registry.metrics();
    const times: number[] = [];
    for (let i = 0; i < SCRAPES; i++) {
      const t0 = process.hrtime.bigint();
      text = await target.registry.metrics();
      times.push(Number(process.hrtime.bigint() - t0) / 1e3);
    }
    times.sort((a, b) => a - b);
    const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
    const series = text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
    console.log(`\n## scrape cost, one store (memory tier), for information`);
    console.log(
      `  await registry.metrics(): p50 ${at(0.5).toFixed(1)} µs, p99 ${at(0.99).toFixed(1)} µs, max ${times.at(-1)!.toFixed(1)} µs over ${SCRAPES} scrapes; ${series} samples, ${fmt(text.length)} bytes of text`,
    );
  } finally {
    await target.close();
  }
}

// ---------------------------------------------------------------- printing

/** Prints each throughput ratio on / off, median over paired rounds [min–max]. */
function ratios(results: Result[], checks: Ratio[]): void {
  const by = new Map(results.map((r) => [r.name, r.rounds]));
  for (const c of checks) {
    const on = by.get(c.on)!;
    const off = by.get(c.off)!;
    const perRound = on.map((v, i) => v / off[i]);
    const f: Figure = { label: c.label, ...stats(perRound) };
    const mark = c.goal ? `  goal ≥ ${GOAL}×: ${f.median >= GOAL ? 'met' : 'MISSED'}` : '';
    console.log(`  throughput ratio, ${c.label}: ${spreadOf(perRound)}${mark}`);
    if (c.goal) figures.push(f);
  }
}

/** Prints the time per op `on` adds to `off`: median over paired rounds of the difference. */
function added(results: Result[], on: string, off: string, label: string): void {
  const by = new Map(results.map((r) => [r.name, r.rounds]));
  const offRounds = by.get(off)!;
  const perRound = by.get(on)!.map((v, i) => 1e6 / v - 1e6 / offRounds[i]);
  const s = stats(perRound);
  console.log(
    `  time added per hit, ${label}: ${s.median.toFixed(3)} µs [${s.min.toFixed(3)}–${s.max.toFixed(3)}] (median of the rounds' differences)`,
  );
}

/** The one-line verdict over every goal figure (medians); true when all are met. */
function verdict(): boolean {
  const missed = figures.filter((f) => f.median < GOAL);
  const worst = figures.reduce((a, b) => (b.median < a.median ? b : a));
  const list = figures
    .map((f) => `${f.label} ${down(f.median)}× ${f.median < GOAL ? 'MISSED' : 'met'}`)
    .join('; ');
  console.log(
    `\nVERDICT: goal (throughput with metrics/tracing on ≥ ${GOAL}× off) ${missed.length === 0 ? 'met' : 'MISSED'}: worst ${down(worst.median)}× (${worst.label}). ${list}`,
  );
  return missed.length === 0;
}

/** A ratio rounded down to 3 decimals: a figure just under the goal never prints as meeting it. */
const down = (v: number): string => (Math.floor(v * 1000 + 1e-9) / 1000).toFixed(3);

/** Median [min–max], the median rounded down (see {@link down}). */
function spreadOf(values: number[]): string {
  const s = stats(values);
  return `${down(s.median)}× [${s.min.toFixed(3)}–${s.max.toFixed(3)}]`;
}
