import { SetMetadata } from '@nestjs/common';
import { type HerdOptions, resolveHerdOptions } from '../herd/herd.options';
import { CACHED_METADATA } from '../tiered-cache.constants';

/* eslint-disable @typescript-eslint/no-explicit-any -- keys and conditions see the method's own arguments */

/**
 * Options of {@link Cached}. The herd settings (`grace`, `lockTimeout`, `earlyRefresh`,
 * `timeout`, `hardTimeout`) default to the module's `herd` option.
 */
export interface CachedOptions extends HerdOptions {
  /**
   * The cache key. A string, or a function of the method's arguments (on a provider method) or of
   * the request (on a controller handler). Default on methods: `Class.method:` plus a stable form
   * of the arguments (object key order does not matter); on handlers: method, path and query with
   * parameters sorted, plus the `vary` headers.
   */
  key?: string | ((...args: any[]) => string);
  /** TTL in ms. Default: the module's `ttl`. */
  ttl?: number;
  /** Prefix added to the key, to group entries (e.g. `'products'`). */
  namespace?: string;
  /**
   * Cache the result only when this returns true. Called with the result, then the method's
   * arguments (methods) or the request (handlers).
   */
  condition?: (result: any, ...args: any[]) => boolean;
  /** Handlers only: request headers that become part of the key, e.g. `['accept-language']`. */
  vary?: string[];
  /** Handlers only: HTTP methods that may be cached. Default `['GET', 'HEAD']`. */
  methods?: string[];
  /**
   * Handlers only: also cache requests that carry `Authorization` or `Cookie`. Such requests are
   * never cached by default, since the response may belong to one caller; opting in requires a
   * `key` function, which must include the caller's identity.
   */
  authorized?: boolean;
}

/**
 * Caches the result of a controller handler (through the module's interceptor) or of a provider
 * method (wrapped at bootstrap), with one origin call per key across every process sharing the
 * tiers (see `HerdOptions`). Handlers answer with `X-Cache: HIT`, `MISS` or `STALE`. The
 * decorator only sets metadata.
 */
export function Cached(options: CachedOptions = {}): MethodDecorator {
  if (options.authorized && typeof options.key !== 'function') {
    throw new TypeError(
      '@Cached({ authorized: true }) needs a key function that includes the caller identity',
    );
  }
  if (options.ttl !== undefined && !(Number.isFinite(options.ttl) && options.ttl >= 0)) {
    throw new TypeError(`@Cached({ ttl }): ${String(options.ttl)} is not a number of ms >= 0`);
  }
  resolveHerdOptions(options, undefined, '@Cached()');
  return SetMetadata(CACHED_METADATA, options);
}
