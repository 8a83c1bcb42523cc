import type { CacheEmptyOptions } from '../herd/cache-empty';
import type { HerdOptions } from '../herd/herd.options';
import { optionNames } from '../options';
import type { TieredStoreOptions } from '../store/tiered-store.options';
import type { MetricsOptions } from '../telemetry/metrics.options';
import type { CacheTracingOptions } from '../telemetry/tracing';
import type { CachedHttpOptions } from './conditional-get';

/**
 * The request headers that make a request private by default (see
 * `TieredCacheModuleOptions.privateHeaders`): credentials and session identifiers.
 */
export const DEFAULT_PRIVATE_HEADERS: readonly string[] = Object.freeze([
  'authorization',
  'proxy-authorization',
  'cookie',
  'x-api-key',
  'x-auth-token',
  'x-access-token',
  'x-csrf-token',
  'x-xsrf-token',
]);

/** Options of `TieredCacheModule.forRoot()` / `forRootAsync()`: the tier engine's, plus module settings. */
export interface TieredCacheModuleOptions extends TieredStoreOptions {
  /**
   * `false`: an unreachable remote tier does not stop the app; it is logged once (Nest `Logger`,
   * warning), marked down and retried by its circuit breaker. `true`: bootstrap fails with the
   * first tier that cannot connect.
   * @default false
   */
  failFast?: boolean;
  /**
   * Log tier errors through Nest's `Logger` (warning level, at most one line per tier every
   * 10 s, with the count of errors since the last line).
   * @default true
   */
  logErrors?: boolean;
  /**
   * Defaults of the herd settings of `getOrSet` and `@Cached()` (`grace`, `lockTimeout`,
   * `earlyRefresh`, `timeout`, `hardTimeout`); each call or decorator may override them.
   * @default the defaults of each `HerdOptions` field
   */
  herd?: HerdOptions;
  /**
   * Negative caching for every `getOrSet` and `@Cached()` call (each may override it, or turn it
   * off with `cacheEmpty: false`): an `undefined` or `null` result, and the named "not found"
   * errors thrown, are cached for `ttl` ms (see `CacheEmptyOptions`).
   * @default off
   */
  cacheEmpty?: CacheEmptyOptions;
  /**
   * Request headers that make a request private: a `@Cached()` handler neither answers such a
   * request from the cache nor stores its response (unless the handler sets `authorized`, with a
   * key that names the caller). Names are case-insensitive; the list replaces the default (spread
   * `DEFAULT_PRIVATE_HEADERS` to extend it).
   * @default `DEFAULT_PRIVATE_HEADERS`: `authorization`, `proxy-authorization`, `cookie`,
   * `x-api-key`, `x-auth-token`, `x-access-token`, `x-csrf-token`, `x-xsrf-token`
   */
  privateHeaders?: readonly string[];
  /**
   * Prometheus metrics of the cache (see `collectMetrics`), through prom-client, an optional
   * peer dependency (`npm install prom-client`; bootstrap fails with `E_MISSING_PEER` naming it
   * when it is missing). `true`: in prom-client's default registry, the one
   * `@willsoto/nestjs-prometheus` serves, with the prefix `tiered_cache_`; an object sets the
   * `registry` and the `prefix`. Registered when the module starts, removed when it shuts down.
   * Reading them costs the hit path nothing (the counters are read at scrape time).
   * @default false
   */
  metrics?: boolean | MetricsOptions;
  /**
   * OpenTelemetry traces (see `CacheTracing`), through `@opentelemetry/api`, an optional peer
   * dependency (bootstrap fails with `E_MISSING_PEER` naming it when it is missing): a
   * `cache.get_or_set` span per `getOrSet` / `@Cached` call, with child spans for remote tier
   * calls and the origin call. Nothing is created (one check per call) until an OpenTelemetry
   * SDK registers a tracer provider. `true`: the global provider's tracer, keys left out; an
   * object sets the `tracer` and `keys: true` (a `cache.key.hash` attribute, never the key).
   * @default false
   */
  tracing?: boolean | CacheTracingOptions;
  /**
   * The default `http` option of every `@Cached()` handler (each field can be overridden by the
   * handler's): `etag` (strong `ETag`, `304 Not Modified` from the cache) and `cacheControl`
   * (`'public' | 'private' | false`: `Cache-Control` with `max-age`, and `Age`). Checked at
   * bootstrap (`http.cacheControl: …`).
   * @default `{ etag: true, cacheControl: false }`
   */
  http?: CachedHttpOptions;
}

/** Options of `forRoot()` / `register()`: the module's options plus `isGlobal`. */
export type TieredCacheModuleRootOptions = TieredCacheModuleOptions & {
  /**
   * Make the module global: its providers can be injected in every module without importing it.
   * @default false
   */
  isGlobal?: boolean;
};

/**
 * The options the module reads itself, beyond the tier engine's: what the module passes to
 * `new TieredStore(options, MODULE_ONLY_OPTIONS)` so that the store accepts them.
 */
export const MODULE_ONLY_OPTIONS = optionNames<
  Omit<TieredCacheModuleOptions, keyof TieredStoreOptions>
>({
  failFast: true,
  logErrors: true,
  herd: true,
  cacheEmpty: true,
  privateHeaders: true,
  metrics: true,
  tracing: true,
  http: true,
});
