import { SetMetadata } from '@nestjs/common';
import { cacheEmptyOption, type CacheEmptyOptions } from '../herd/cache-empty';
import { type HerdOptions, resolveHerdOptions } from '../herd/herd.options';
import { invalid, milliseconds, optionNames, optionsObject } from '../options';
import { checkTagsOption, headerNames } from './cached-call';
import { checkHttpOptions, type CachedHttpOptions } from './conditional-get';
import { routeDecorator } from './cached-route.interceptor';
import type { CacheDecorator, ConditionArgs } from './decorated-method';
import { CACHED_METADATA } from './tiered-cache.constants';

/**
 * Options of {@link Cached}. The herd settings (`grace`, `lockTimeout`, `earlyRefresh`,
 * `timeout`, `hardTimeout`) default to the module's `herd` option.
 *
 * `Args` are what a `key` or `tags` function takes: a provider method's arguments, or for a
 * controller handler `(request, context)` (see `CachedHandlerArgs`). `Result` is what `condition`
 * takes. Both are inferred from the functions given.
 */
export interface CachedOptions<
  Args extends unknown[] = unknown[],
  Result = unknown,
> extends HerdOptions {
  /**
   * The cache key: a string, or a function of the method's arguments (on a provider method) or
   * of the request and the `ExecutionContext` (on a controller handler; see `CachedHandlerKey`).
   * @default on methods, `Class.method:` plus a stable form of the arguments (object key order
   * does not matter); on handlers, `Controller.handler:`, the method, the path exactly as received
   * (never decoded nor normalised), the query (plain-named parameters sorted), the `Host` and
   * `X-Forwarded-Host` headers and the `vary` headers, e.g.
   * `ProductsController.list:GET /products?a=1&b=2 host="shop.example"`
   */
  key?: string | ((...args: Args) => string);
  /**
   * TTL in ms.
   * @default the module's `ttl`
   */
  ttl?: number;
  /** Prefix added to the key (as `namespace:key`), to group entries (e.g. `'products'`). */
  namespace?: string;
  /**
   * Tags of the cached entry, so that `TieredCache.invalidateTags()` (or `@CacheEvict({ tags })`)
   * of any of them invalidates it: a list, or a function of the method's arguments (on a provider
   * method) or of the request and the `ExecutionContext` (on a controller handler; see
   * `CachedHandlerTags`) returning one. The function is called only when the value is computed
   * (a hit does not call it), just before the method, and its result checked then: anything but
   * a list of tags rejects the call (`@Cached().tags(): …`) without calling the method. Each
   * tag is a non-empty string of at most `MAX_TAG_BYTES` UTF-8 bytes, at most
   * `MAX_TAGS_PER_ENTRY` per entry.
   * @default none
   */
  tags?: readonly string[] | ((...args: Args) => readonly string[]);
  /**
   * Cache the result only when this returns true (it is returned either way). Called with the
   * result, then the method's arguments (methods) or the request (handlers).
   * @default every result is cached
   */
  condition?: (result: Result, ...args: ConditionArgs<Args>) => boolean;
  /**
   * Negative caching: an `undefined` or `null` result, and the named "not found" errors thrown
   * (e.g. `NotFoundException`), are cached for `cacheEmpty.ttl` ms; `false` turns off the
   * module's `cacheEmpty` for this method.
   * @default the module's `cacheEmpty` (off)
   */
  cacheEmpty?: CacheEmptyOptions | false;
  /**
   * Handlers only: request headers that become part of the default key, e.g.
   * `['accept-language']`; the handler's responses name them in a `Vary` header.
   * @default none
   */
  vary?: string[];
  /**
   * Handlers only: HTTP methods that may be cached.
   * @default ['GET', 'HEAD']
   */
  methods?: string[];
  /**
   * Handlers only: also cache requests that carry a private header (the module's
   * `privateHeaders`: `Authorization`, `Cookie`, `X-Api-Key`, … by default). Such requests are
   * never cached by default, since the response may belong to one caller; opting in requires a
   * `key` function, which must include the caller's identity.
   * @default false
   */
  authorized?: boolean;
  /**
   * Handlers only: conditional GET and HTTP caching headers. `etag` (on by default): a strong
   * `ETag` stored with the entry, and `304 Not Modified` from the cache, without calling the
   * handler, for a GET or HEAD whose `If-None-Match` names it. `cacheControl: 'public' |
   * 'private'`: `Cache-Control` with `max-age` and `Age` from the entry's TTL (`'public'` is
   * refused with `authorized`). Each field defaults to the module's `http`.
   * @default `{ etag: true, cacheControl: false }`
   */
  http?: CachedHttpOptions;
}

const WHERE = '@Cached()';

/** The options of `@Cached()` beyond the herd settings (unknown keys are refused). */
const CACHED_ONLY_OPTIONS = optionNames<Omit<CachedOptions, keyof HerdOptions>>({
  key: true,
  ttl: true,
  namespace: true,
  tags: true,
  condition: true,
  cacheEmpty: true,
  vary: true,
  methods: true,
  authorized: true,
  http: true,
});

/**
 * Caches the result of a controller handler (through the module's interceptor) or of a provider
 * method (wrapped at bootstrap), with one origin call per key across every process sharing the
 * tiers (see `HerdOptions`). Handlers answer with `X-Cache: HIT`, `MISS` or `STALE`. The
 * decorator only sets metadata; on a provider method, TypeScript checks typed `key` and `tags`
 * functions against the method's parameters.
 * @throws InvalidOptionError for invalid options, naming them (`@Cached().ttl: …`,
 *   `@Cached().tags[0]: must not be empty`).
 */
export function Cached<Args extends unknown[] = unknown[], Result = unknown>(
  options: CachedOptions<Args, Result> = {},
): CacheDecorator<Args, Result> {
  optionsObject(WHERE, options);
  if (options.authorized && typeof options.key !== 'function') {
    throw invalid(
      `${WHERE}.authorized`,
      'true needs a key function that includes the caller identity',
    );
  }
  milliseconds(`${WHERE}.ttl`, options.ttl, 0);
  headerNames(`${WHERE}.vary`, options.vary, []);
  checkTagsOption(`${WHERE}.tags`, options.tags);
  cacheEmptyOption(`${WHERE}.cacheEmpty`, options.cacheEmpty);
  const http = checkHttpOptions(`${WHERE}.http`, options.http);
  if (options.authorized && http?.cacheControl === 'public') {
    throw invalid(
      `${WHERE}.http.cacheControl`,
      "'public' with authorized: true (the response is keyed on a caller identity): use 'private'",
    );
  }
  resolveHerdOptions(options, undefined, WHERE, CACHED_ONLY_OPTIONS);
  return routeDecorator(SetMetadata(CACHED_METADATA, options)) as CacheDecorator<Args, Result>;
}
