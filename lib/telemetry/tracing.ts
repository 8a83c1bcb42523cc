import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Attributes, Context, Span, Tracer, TracerProvider } from '@opentelemetry/api';
import { loadPeer } from '../errors';
import type { CacheLookup, LookupTracer } from '../herd/read-through';
import { at, boolean, describeValue, invalid, onlyKnownKeys, optionNames } from '../options';
import type { CacheEventMap, CacheEvents } from '../store/cache-events';
import type { TieredStoreOptions } from '../store/tiered-store.options';

/**
 * What `tracer` must be: an OpenTelemetry `Tracer` (`trace.getTracer('my-app')` of
 * @opentelemetry/api). Declared here so that this package's types do not need @opentelemetry/api,
 * an optional peer dependency.
 */
export interface TracerLike {
  startSpan(name: string, options?: object, context?: object): object;
}

/** Options of {@link CacheTracing} (the module's `tracing` option, when an object). */
export interface CacheTracingOptions {
  /**
   * The tracer spans are started with. Given, it is always used (even one that records nothing).
   * @default the tracer `nestjs-tiered-cache` of the global provider, once an OpenTelemetry SDK
   * registers one; no span at all until then
   */
  tracer?: TracerLike;
  /**
   * Adds `cache.key.hash` to the `cache.get_or_set` and `cache.origin` spans: the first 16 hex
   * digits of the SHA-256 of the caller's key (a key never appears in clear). The same key
   * always gives the same hash (searchable); a key that can be guessed (`user:42`) can be found
   * from its hash by trying guesses: leave this off when keys carry secrets (tokens, emails).
   * Costs one SHA-256 of the key per traced lookup.
   * @default false
   */
  keys?: boolean;
  /**
   * Makes a `cache.get_or_set` span for lookups answered by a fresh entry of the memory tier too.
   * Off, such a hit (one that makes no call past the process and starts no early refresh) is
   * answered without a span: it takes about 0.3 µs, and a span of the OpenTelemetry SDK about
   * 5 µs, so tracing every one would make the most frequent call of a cached app several times
   * slower (`npm run bench -- operations` prints both). Its count is in the metrics
   * (`tiered_cache_reads_total`), and every call that reaches memcached, Cassandra or the
   * origin, stale serves and early refreshes included, still has its span.
   * @default false
   */
  localHits?: boolean;
}

/** The names of {@link CacheTracingOptions}; any other key fails. */
export const CACHE_TRACING_OPTIONS = optionNames<CacheTracingOptions>({
  tracer: true,
  keys: true,
  localHits: true,
});

/** The store a {@link CacheTracing} follows: its events, and its options for the namespace. */
export interface TracedStore {
  readonly events: CacheEvents;
  readonly opts: Pick<TieredStoreOptions, 'namespace'>;
}

/** The name of the tracer taken from the global provider (the instrumentation scope). */
export const TRACER_NAME = 'nestjs-tiered-cache';

/** A `getOrSet` / `@Cached` call. */
const GET_OR_SET = 'cache.get_or_set';
/** The factory (the origin) called by one. */
const ORIGIN = 'cache.origin';
/** The namespace `KeyBuilder` uses when none is given. */
const DEFAULT_NAMESPACE = 'app';

type OtelApi = typeof import('@opentelemetry/api');

/** What a {@link CacheTracing} holds while attached, once @opentelemetry/api is loaded. */
interface Attached {
  api: OtelApi;
  events: CacheEvents;
  namespace: string;
}

/** A proxy provider's lookup of its delegate's tracer (`ProxyTracerProvider` of the API). */
type MaybeProxy = TracerProvider & {
  getDelegateTracer?: (name: string) => Tracer | undefined;
};

/**
 * OpenTelemetry spans for the read-through calls of one store (`getOrSet`, `@Cached`), through
 * @opentelemetry/api (an optional peer dependency, loaded by {@link attach}):
 *
 * - `cache.get_or_set` (kind INTERNAL) per {@link lookup} (the read-through calls it for every
 *   lookup but a fresh memory-tier hit, unless `localHits`), active while it runs (spans the
 *   factory starts are its children), with `cache.namespace`, `cache.status` (`HIT`, `MISS`, `STALE`),
 *   `cache.stored`, and `error.type` with an error status when the call rejects (the error's
 *   message is not recorded: it may hold the key);
 * - a child per remote tier call it makes (`cache.tier.get`, `cache.tier.lease`…: the operation,
 *   spaces as `_`) with `cache.tier`, `cache.operation`, `cache.result` (`ok`, `error`), and one
 *   for the origin call, `cache.origin`, with `cache.result`. They are made from the store's
 *   `tier-call` and `origin` events, when the call has settled: started at its beginning (now
 *   minus its duration), ended now, parented to the span active where the event is emitted, which
 *   the read-through code runs under (a tier call made inside a span the factory started is that
 *   span's child; the factory's own spans are siblings of `cache.origin`, made after it). A call
 *   is a child of the lookup that made it: callers that join another's read or factory call
 *   (single flight) get no children of their own. Work the lookup starts and does not wait for
 *   shows as children that end after it: the refresh behind a stale serve or an early refresh,
 *   writes past the lease tier and backfills (finished in the background).
 *   Children need a context manager (the Node SDK registers one); without one there is only the
 *   `cache.get_or_set` span. Plain reads and writes of the store (`get`, `set`) make no spans.
 *
 * Costs nothing while no SDK is registered and no `tracer` is given: {@link lookup} calls `run`
 * directly after a check that allocates nothing (the global provider is the API's proxy, asked
 * for its delegate's tracer, which is none: 0.08–0.14 µs a call in `npm run bench -- operations`), and
 * the store's events are not listened to (they then cost nothing either). A provider registered
 * later is found by the next lookup; the tracer found is kept while the global provider is the
 * same object (`trace.disable()` and a new registration are noticed). A registered provider
 * whose sampler drops a trace still costs one non-recording span per lookup, as any
 * instrumentation does; its children are skipped.
 */
export class CacheTracing implements LookupTracer {
  /** Whether fresh memory-tier hits get a span too (see {@link CacheTracingOptions.localHits}). */
  readonly localHits: boolean;
  private readonly given: Tracer | undefined;
  private readonly keys: boolean;
  /** Where the options sit, for errors. */
  private readonly path: string;
  /** The context value marking a lookup of this instance: the tracer of its span. */
  private readonly marker = Symbol('nestjs-tiered-cache lookup');
  private attached: Attached | undefined;
  /** The store {@link attach} was last called with (set before the API is loaded). */
  private store: TracedStore | undefined;
  /** The global provider last looked at, and the tracer it gave (none: a proxy without SDK). */
  private provider: TracerProvider | undefined;
  private global: Tracer | undefined;
  private unsubscribe: (() => void) | undefined;

  /**
   * @param options see {@link CacheTracingOptions}; unknown keys fail.
   * @param path where the options sit, for errors (`tracing.keys: …`).
   * @throws InvalidOptionError for an unknown key, a `tracer` without `startSpan`, a `keys` that
   * is not a boolean.
   */
  constructor(options: CacheTracingOptions = {}, path = 'tracing') {
    if (options === null || typeof options !== 'object' || Array.isArray(options))
      throw invalid(
        path,
        `must be true, false or an object { tracer?, keys?, localHits? }, got ${describeValue(options)}`,
      );
    onlyKnownKeys(path, options, CACHE_TRACING_OPTIONS);
    const tracer: unknown = options.tracer;
    if (
      tracer !== undefined &&
      (tracer === null ||
        typeof tracer !== 'object' ||
        typeof (tracer as TracerLike).startSpan !== 'function')
    )
      throw invalid(
        at(path, 'tracer'),
        `must be an OpenTelemetry Tracer (trace.getTracer(name)), got ${describeValue(tracer)}`,
      );
    this.given = tracer as Tracer | undefined;
    this.keys = boolean(at(path, 'keys'), options.keys, false);
    this.localHits = boolean(at(path, 'localHits'), options.localHits, false);
    this.path = path;
  }

  /**
   * The tracing a module option asks for: none for `undefined` or `false`, the defaults for
   * `true`, else the options given.
   * @throws InvalidOptionError naming `path` for anything else (see the constructor).
   */
  static fromOption(
    value: boolean | CacheTracingOptions | undefined,
    path = 'tracing',
  ): CacheTracing | undefined {
    if (value === undefined || value === false) return undefined;
    return new CacheTracing(value === true ? {} : value, path);
  }

  /**
   * Follows `store`: loads @opentelemetry/api, then traces {@link lookup}s and listens to the
   * store's `tier-call` and `origin` events while a tracer is there. Lookups made before it
   * resolves are not traced. Calling it again with the same store does nothing.
   * @throws TieredCacheError `E_MISSING_PEER` when @opentelemetry/api is not installed.
   * @throws TypeError when attached to another store (call {@link detach} first).
   */
  async attach(store: TracedStore): Promise<void> {
    if (this.store !== undefined && this.store !== store)
      throw new TypeError('CacheTracing: attached to another store; detach() it first');
    this.store = store;
    let api: OtelApi;
    try {
      api = this.attached?.api ?? (await loadApi(this.path));
    } catch (err) {
      if (this.store === store) this.store = undefined;
      throw err;
    }
    // Detached while loading, or attached by a concurrent call.
    if (this.store !== store || this.attached !== undefined) return;
    this.attached = {
      api,
      events: store.events,
      namespace: store.opts.namespace ?? DEFAULT_NAMESPACE,
    };
    if (this.given !== undefined) this.listen(true);
    else this.tracer(this.attached);
  }

  /** Stops tracing and listening to the store's events (until {@link attach} again). */
  detach(): void {
    this.listen(false);
    this.attached = undefined;
    this.store = undefined;
    this.provider = undefined;
    this.global = undefined;
  }

  /** Whether the store's events are listened to (a tracer is there, and it is attached). */
  get listening(): boolean {
    return this.unsubscribe !== undefined;
  }

  /**
   * Runs `run` (the read-through call of `key`) in a `cache.get_or_set` span when tracing is on,
   * and returns what it returns; else calls `run` directly (see the class's note on cost).
   */
  lookup<T>(key: string, run: () => Promise<CacheLookup<T>>): Promise<CacheLookup<T>> {
    const attached = this.attached;
    if (attached === undefined) return run();
    const tracer = this.tracer(attached);
    if (tracer === undefined) return run();
    return this.traced(attached, tracer, key, run);
  }

  /**
   * The tracer to use now: the one given, or the global provider's (none while it is the API's
   * proxy without a delegate). Starts or stops listening when that changes.
   */
  private tracer(attached: Attached): Tracer | undefined {
    if (this.given !== undefined) return this.given;
    const provider: MaybeProxy = attached.api.trace.getTracerProvider();
    if (provider === this.provider && this.global !== undefined) return this.global;
    this.provider = provider;
    const tracer =
      typeof provider.getDelegateTracer === 'function'
        ? provider.getDelegateTracer(TRACER_NAME)
        : provider.getTracer(TRACER_NAME);
    if (tracer !== this.global) {
      this.global = tracer;
      this.listen(tracer !== undefined);
    }
    return tracer;
  }

  private traced<T>(
    { api, namespace }: Attached,
    tracer: Tracer,
    key: string,
    run: () => Promise<CacheLookup<T>>,
  ): Promise<CacheLookup<T>> {
    const parent = api.context.active();
    const attributes: Attributes = { 'cache.namespace': namespace };
    if (this.keys) attributes['cache.key.hash'] = traceKeyHash(key);
    const span = tracer.startSpan(GET_OR_SET, { kind: api.SpanKind.INTERNAL, attributes }, parent);
    const inside = api.trace.setSpan(parent.setValue(this.marker, tracer), span);
    let pending: Promise<CacheLookup<T>>;
    try {
      pending = api.context.with(inside, run);
    } catch (err) {
      pending = Promise.reject(err);
    }
    return pending.then(
      (found) => {
        span.setAttributes({ 'cache.status': found.status, 'cache.stored': found.stored });
        span.end();
        return found;
      },
      (err: unknown) => {
        span.setAttribute('error.type', errorType(err));
        span.setStatus({ code: api.SpanStatusCode.ERROR });
        span.end();
        throw err;
      },
    );
  }

  /** Starts (`true`) or stops listening to the store's `tier-call` and `origin` events. */
  private listen(on: boolean): void {
    if (!on || this.attached === undefined) {
      this.unsubscribe?.();
      this.unsubscribe = undefined;
      return;
    }
    if (this.unsubscribe !== undefined) return;
    const events = this.attached.events;
    const offTierCall = events.on('tier-call', this.onTierCall);
    const offOrigin = events.on('origin', this.onOrigin);
    this.unsubscribe = () => {
      offTierCall();
      offOrigin();
    };
  }

  private readonly onTierCall = (e: CacheEventMap['tier-call']): void => {
    this.child(tierSpanName(e.op), e.seconds, e.ok, {
      'cache.tier': e.tier,
      'cache.operation': e.op,
      'cache.result': e.ok ? 'ok' : 'error',
    });
  };

  private readonly onOrigin = (e: CacheEventMap['origin']): void => {
    const ok = e.outcome === 'ok';
    const attributes: Attributes = { 'cache.result': e.outcome };
    if (this.keys) attributes['cache.key.hash'] = traceKeyHash(e.key);
    this.child(ORIGIN, e.seconds, ok, attributes);
  };

  /**
   * A span for a call that took `seconds` and just ended, under the active span, when that runs
   * in one of this instance's lookups and its trace is sampled.
   */
  private child(name: string, seconds: number, ok: boolean, attributes: Attributes): void {
    const api = this.attached?.api;
    if (api === undefined) return;
    const context: Context = api.context.active();
    const tracer = context.getValue(this.marker) as Tracer | undefined;
    if (tracer === undefined) return;
    const parent: Span | undefined = api.trace.getSpan(context);
    // The sampled flag, not isRecording(): a background refresh's lookup span has already ended.
    if (parent === undefined || (parent.spanContext().traceFlags & api.TraceFlags.SAMPLED) === 0)
      return;
    const end = performance.now();
    const span = tracer.startSpan(
      name,
      { kind: api.SpanKind.INTERNAL, startTime: end - seconds * 1000, attributes },
      context,
    );
    if (!ok) span.setStatus({ code: api.SpanStatusCode.ERROR });
    span.end(end);
  }
}

/** `cache.key.hash`: the first 16 hex digits (64 bits) of the key's SHA-256. */
export function traceKeyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

const tierSpanNames = new Map<string, string>();

/** `cache.tier.<op>`, spaces as `_` (`lease release` → `cache.tier.lease_release`). */
function tierSpanName(op: string): string {
  let name = tierSpanNames.get(op);
  if (name === undefined) {
    name = `cache.tier.${op.replaceAll(' ', '_')}`;
    tierSpanNames.set(op, name);
  }
  return name;
}

/** `error.type`: the error's class name (`CacheTimeoutError`), or `_OTHER` for a non-error. */
function errorType(err: unknown): string {
  return err instanceof Error ? err.name : '_OTHER';
}

/** @opentelemetry/api, loaded on first use (an optional peer dependency). */
async function loadApi(path: string): Promise<OtelApi> {
  const mod = await loadPeer(
    () => import('@opentelemetry/api') as Promise<OtelApi & { default?: OtelApi }>,
    `${path} needs the @opentelemetry/api package: npm install @opentelemetry/api`,
  );
  return mod.trace !== undefined ? mod : mod.default!;
}
