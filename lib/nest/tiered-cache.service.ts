import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { systemClock } from '../clock';
import { messageOf, type TierError } from '../errors';
import {
  resolveHerdOptions,
  type HerdOptions,
  type ResolvedHerdOptions,
} from '../herd/herd.options';
import {
  cacheEmptyOption,
  type CacheEmptyOptions,
  type ResolvedCacheEmpty,
} from '../herd/cache-empty';
import type { Factory } from '../herd/entry-context';
import { ReadThrough, type CacheLookup } from '../herd/read-through';
import { readThroughCallOf, type ReadThroughCall } from '../herd/read-through-call';
import type { SetManyEntry, SetOptions } from '../store/stored-entry';
import { checkTags, type InvalidateTagsOptions } from '../store/tag-times';
import type { TierStats } from '../store/tier-stats';
import type { CacheEvents } from '../store/cache-events';
import type { BusEvent } from '../store/coherence';
import { TieredStore } from '../store/tiered-store';
import { metricsConfig, type MetricsConfig } from '../telemetry/metrics.options';
import { collectMetrics, type CacheMetrics } from '../telemetry/prometheus';
import { CacheTracing } from '../telemetry/tracing';
import { entryBody } from './conditional-get';
import { TIERED_CACHE_OPTIONS } from './tiered-cache.module-definition';
import type { TieredCacheModuleOptions } from './tiered-cache.options';

/**
 * Options of {@link TieredCache.getOrSet}: the herd settings (defaults from the module's `herd`
 * option) plus the entry's own.
 */
export interface GetOrSetOptions<T = unknown> extends HerdOptions {
  /**
   * TTL in ms for the computed value (`0` = no expiry).
   * @default the module's `ttl`
   */
  ttl?: number;
  /**
   * Store the computed value only when this returns true (it is returned either way).
   * @default every value is stored
   */
  condition?: (value: T) => boolean;
  /**
   * Tags of the computed entry: {@link TieredCache.invalidateTags} of any of them covers it (as
   * of when its computation began).
   */
  tags?: readonly string[];
  /**
   * Negative caching: an `undefined` or `null` result (and the named errors thrown) is cached
   * for `cacheEmpty.ttl`; `false` turns off the module's `cacheEmpty` for this call.
   * @default the module's `cacheEmpty` (off)
   */
  cacheEmpty?: CacheEmptyOptions | false;
}

const LOG_EVERY_MS = 10_000;
const GET_OR_SET_OPTIONS = ['ttl', 'condition', 'tags', 'cacheEmpty'];

/**
 * The tiered cache as an injectable service: plain reads and writes, counters, and `getOrSet`,
 * the herd-protected read-through path used by `@Cached()`.
 */
@Injectable()
export class TieredCache implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('TieredCache');
  private readonly readThrough: ReadThrough;
  private readonly herd: ResolvedHerdOptions;
  /** The module's `cacheEmpty`, checked (`undefined`: off). */
  private readonly cacheEmpty: ResolvedCacheEmpty | undefined;
  /** Each call's or decorator's `cacheEmpty`, checked once (see {@link emptyFor}). */
  private readonly checkedEmpty = new WeakMap<CacheEmptyOptions, ResolvedCacheEmpty | undefined>();
  /**
   * The read-through settings of each decorator whose calls all have the same (see
   * `readThroughCall`): built once per decorator and cache.
   * @internal
   */
  readonly decoratorCalls = new WeakMap<object, ReadThroughCall<unknown>>();
  /** Each decorator's herd settings, resolved over {@link herd} (see {@link herdFor}). */
  private readonly decoratorHerds = new WeakMap<HerdOptions, ResolvedHerdOptions>();
  private readonly lastLog = new Map<string, { at: number; suppressed: number }>();
  /** The `metrics` option, checked; undefined without metrics. */
  private readonly metricsOptions: MetricsConfig | undefined;
  private metrics: CacheMetrics | undefined;
  /** The `tracing` option's tracer of `getOrSet` calls; undefined without tracing. */
  private readonly tracing: CacheTracing | undefined;

  constructor(
    /** The tier chain behind this service (also behind `CACHE_MANAGER`). */
    readonly store: TieredStore,
    @Inject(TIERED_CACHE_OPTIONS) private readonly options: TieredCacheModuleOptions,
  ) {
    this.herd = resolveHerdOptions(options.herd, undefined, 'herd', []);
    this.cacheEmpty = cacheEmptyOption('cacheEmpty', options.cacheEmpty) ?? undefined;
    this.metricsOptions = metricsConfig(options.metrics, 'metrics');
    this.tracing = CacheTracing.fromOption(options.tracing, 'tracing');
    this.readThrough = new ReadThrough(store, {
      clock: options.clock ?? systemClock,
      tracer: this.tracing,
      events: store.events,
      onOverdue: (key, lockTimeout) =>
        this.throttled(
          'overdue',
          `the factory of ${JSON.stringify(key)} has run past lockTimeout (${lockTimeout} ms): ` +
            'the callers waiting for it in this process get one more call of it. (A factory that ' +
            'calls getOrSet or a @Cached method under its own key after an await waits this ' +
            'long: give the inner call another key.)',
        ),
      onBackgroundError: (key, err) =>
        this.throttled(
          'refresh',
          `background refresh of ${JSON.stringify(key)} failed${
            this.herd.grace > 0 ? ' (stale value kept within grace)' : ''
          }: ${messageOf(err)}`,
        ),
    });
  }

  /**
   * The store's typed events (see `CacheEventMap`): hits and misses per tier, timed tier calls,
   * origin calls, stale serves, leases, circuits, tier errors, the bus.
   */
  get events(): CacheEvents {
    return this.store.events;
  }

  /** Registers the `metrics`, connects the tiers (see `failFast`) and logs the chain. */
  async onModuleInit(): Promise<void> {
    // A listener of `events` that throws: logged once (it never breaks the cache).
    this.store.on('listener-error', (event: string, err: unknown) =>
      this.logger.error(`a listener of the "${event}" cache event threw: ${messageOf(err)}`),
    );
    if (this.options.logErrors !== false) {
      this.store.on('error', (err: TierError) => this.logError(err));
      // The bus going down, coming back, or a missed invalidation: one line each (throttled).
      this.store.on('bus', (e: BusEvent) => {
        if (e.type !== 'invalidated') this.throttled(`bus ${e.type}`, e.message);
      });
    }
    if (this.metricsOptions !== undefined)
      this.metrics = await collectMetrics(this.store, this.metricsOptions);
    try {
      await this.tracing?.attach(this.store);
      await this.store.connect({ failFast: this.options.failFast === true });
    } catch (err) {
      this.tracing?.detach();
      await this.metrics?.detach();
      throw err;
    }
    const tiers = this.store.stats();
    this.logger.log(
      `tiers: ${tiers.map((t) => `${t.name}${t.circuit === 'closed' ? '' : ' (down)'}`).join(' → ')}` +
        (this.options.bus === undefined
          ? ''
          : `; invalidation bus ${this.store.busStats()?.up ? 'up' : 'connecting'}`),
    );
  }

  /** Removes the metrics and disconnects the tiers. */
  async onApplicationShutdown(): Promise<void> {
    this.tracing?.detach();
    await this.metrics?.detach();
    await this.store.disconnect();
  }

  /** The value of `key`, or `undefined` when no tier has it (or it has expired). */
  get<T>(key: string): Promise<T | undefined> {
    return this.store.get<T>(key);
  }

  /**
   * Stores `value`; `ttl` in ms (default: the module's `ttl`; 0 = no expiry), given alone or with
   * the entry's `tags` (see {@link invalidateTags}).
   */
  async set<T>(key: string, value: T, options?: number | SetOptions): Promise<void> {
    await this.store.set(key, value, options);
  }

  /** Deletes one key or several, from every tier. */
  async del(key: string | string[]): Promise<void> {
    if (Array.isArray(key)) await this.store.deleteMany(key);
    else await this.store.delete(key);
  }

  /** The values of `keys`, in order (`undefined` for those no tier has). */
  mget<T>(keys: string[]): Promise<Array<T | undefined>> {
    return this.store.getMany<T>(keys);
  }

  /**
   * Stores several entries, each with its own `ttl` in ms (default: the module's `ttl`) and
   * `tags`.
   */
  mset(entries: SetManyEntry[]): Promise<void> {
    return this.store.setMany(entries);
  }

  /**
   * Invalidates every entry written with one of `tags` until now, in every tier and on every
   * instance (see `TieredStore.invalidateTags`): `mode: 'delete'` (default) makes them misses,
   * `'expire'` stale (served by `getOrSet` within `grace` while one caller refreshes).
   */
  invalidateTags(tags: string[], options?: InvalidateTagsOptions): Promise<void> {
    return this.store.invalidateTags(tags, options);
  }

  /** Adds `by` to the counter `key` and returns its new value (see `TieredStore.increment`). */
  increment(key: string, by = 1, ttl?: number): Promise<number> {
    return this.store.increment(key, by, ttl);
  }

  /** Subtracts `by` from the counter `key` and returns its new value (see `TieredStore.increment`). */
  decrement(key: string, by = 1, ttl?: number): Promise<number> {
    return this.store.decrement(key, by, ttl);
  }

  /** Invalidates this namespace on every instance (see `TieredStore.clear`). */
  clear(): Promise<void> {
    return this.store.clear();
  }

  /** Counters of each tier, nearest first. */
  stats(): TierStats[] {
    return this.store.stats();
  }

  /**
   * Returns the cached value of `key`, or computes it with `factory`, stores it and returns it,
   * with one `factory` call per key across every process sharing the tiers (see `HerdOptions`
   * for stale serving, early refresh and timeouts). The factory gets its entry's context: it may
   * set the entry's TTL, grace and tags from the value, skip storing it, and read the stale
   * value it refreshes (see `CacheEntryContext`).
   */
  getOrSet<T>(key: string, factory: Factory<T>, options: GetOrSetOptions<T> = {}): Promise<T> {
    let call: ReadThroughCall<T>;
    try {
      call = this.callOf(options);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.readThrough.value(key, factory, call, entryBody as (stored: T) => T);
  }

  /** {@link getOrSet}, also telling whether the value was a hit, a miss or stale (for `X-Cache`). */
  lookup<T>(
    key: string,
    factory: Factory<T>,
    options: GetOrSetOptions<T> = {},
  ): Promise<CacheLookup<T>> {
    let call: ReadThroughCall<T>;
    try {
      call = this.callOf(options);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.readThrough.lookup(key, factory, call);
  }

  /** The read-through settings of `getOrSet` options, checked. */
  private callOf<T>(options: GetOrSetOptions<T>): ReadThroughCall<T> {
    const tags = checkTags('getOrSet options.tags', options.tags);
    const herd = resolveHerdOptions(options, this.herd, 'getOrSet options', GET_OR_SET_OPTIONS);
    const empty = this.emptyFor(options, 'getOrSet options.cacheEmpty');
    return readThroughCallOf(herd, options.ttl, options.condition, tags, empty);
  }

  /**
   * The `cacheEmpty` of `getOrSet` options or a decorator (checked once per options object)
   * over the module's.
   * @internal
   */
  emptyFor(
    options: { cacheEmpty?: CacheEmptyOptions | false },
    path: string,
  ): ResolvedCacheEmpty | undefined {
    const own = options.cacheEmpty;
    if (own === undefined) return this.cacheEmpty;
    if (own === false) return undefined;
    let empty = this.checkedEmpty.get(own);
    if (empty === undefined)
      this.checkedEmpty.set(own, (empty = cacheEmptyOption(path, own) ?? undefined));
    return empty;
  }

  /**
   * A decorator's herd settings over the module's, resolved once per options object (checked
   * when the decorator was applied).
   * @internal
   */
  herdFor(options: HerdOptions): ResolvedHerdOptions {
    let herd = this.decoratorHerds.get(options);
    if (herd === undefined)
      this.decoratorHerds.set(
        options,
        (herd = resolveHerdOptions(options, this.herd, '@Cached()')),
      );
    return herd;
  }

  /**
   * {@link lookup} with its settings resolved (see `readThroughCall`), answered synchronously
   * when the memory tier's entry answers alone: `@Cached()` handlers' path.
   * @internal
   */
  lookupNow<T>(
    key: string,
    factory: Factory<T>,
    call: ReadThroughCall<T>,
  ): CacheLookup<T> | Promise<CacheLookup<T>> {
    return this.readThrough.lookupNow(key, factory, call);
  }

  /**
   * {@link lookupNow}'s value alone, as a promise: `@Cached()` methods' path. A key a `@Cached()`
   * handler stored (its response: body, status, ETag) reads as the body, as in `getOrSet`.
   * @internal
   */
  valueCall<T>(key: string, factory: Factory<T>, call: ReadThroughCall<T>): Promise<T> {
    return this.readThrough.value(key, factory, call, entryBody as (stored: T) => T);
  }

  /** One warning per tier every 10 s at most, with the number of errors it stands for. */
  private logError(err: TierError): void {
    this.throttled(err.tier, err.message);
  }

  private throttled(topic: string, message: string): void {
    const now = Date.now();
    const last = this.lastLog.get(topic);
    if (last && now - last.at < LOG_EVERY_MS) {
      last.suppressed++;
      return;
    }
    const more = last?.suppressed ? ` (+${last.suppressed} more since the last report)` : '';
    this.lastLog.set(topic, { at: now, suppressed: 0 });
    this.logger.warn(`${message}${more}`);
  }
}
