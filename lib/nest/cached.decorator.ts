import { SetMetadata } from '@nestjs/common';
import { type HerdOptions, resolveHerdOptions } from '../herd/herd.options';
import { invalid, milliseconds, optionsObject } from '../options';
import type { CacheDecorator, ConditionArgs } from './decorated-method';
import { CACHED_METADATA } from './tiered-cache.constants';

/**
 * Options of {@link Cached}. The herd settings (`grace`, `lockTimeout`, `earlyRefresh`,
 * `timeout`, `hardTimeout`) default to the module's `herd` option.
 *
 * `Args` are what a `key` function takes: a provider method's arguments, or for a controller
 * handler `(request, context)` (see `CachedHandlerArgs`). `Result` is what `condition` takes.
 * Both are inferred from the functions given.
 */
export interface CachedOptions<
  Args extends unknown[] = unknown[],
  Result = unknown,
> extends HerdOptions {
  /**
   * The cache key: a string, or a function of the method's arguments (on a provider method) or
   * of the request and the `ExecutionContext` (on a controller handler; see `CachedHandlerKey`).
   * @default on methods, `Class.method:` plus a stable form of the arguments (object key order
   * does not matter); on handlers, the method, path and query with parameters sorted, plus the
   * `vary` headers
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
   * Cache the result only when this returns true (it is returned either way). Called with the
   * result, then the method's arguments (methods) or the request (handlers).
   * @default every result is cached
   */
  condition?: (result: Result, ...args: ConditionArgs<Args>) => boolean;
  /** Handlers only: request headers that become part of the default key, e.g. `['accept-language']`. */
  vary?: string[];
  /**
   * Handlers only: HTTP methods that may be cached.
   * @default ['GET', 'HEAD']
   */
  methods?: string[];
  /**
   * Handlers only: also cache requests that carry `Authorization` or `Cookie`. Such requests are
   * never cached by default, since the response may belong to one caller; opting in requires a
   * `key` function, which must include the caller's identity.
   * @default false
   */
  authorized?: boolean;
}

const WHERE = '@Cached()';

/**
 * Caches the result of a controller handler (through the module's interceptor) or of a provider
 * method (wrapped at bootstrap), with one origin call per key across every process sharing the
 * tiers (see `HerdOptions`). Handlers answer with `X-Cache: HIT`, `MISS` or `STALE`. The
 * decorator only sets metadata; on a provider method, TypeScript checks a typed `key` function
 * against the method's parameters.
 * @throws InvalidOptionError for invalid options, naming them (`@Cached().ttl: …`).
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
  resolveHerdOptions(options, undefined, WHERE);
  return SetMetadata(CACHED_METADATA, options);
}
