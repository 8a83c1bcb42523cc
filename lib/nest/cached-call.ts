import type { ExecutionContext } from '@nestjs/common';
import type { Reflector } from '@nestjs/core';
import { herdOf } from '../herd/herd.options';
import { at, describeValue, invalid } from '../options';
import type { CacheEvictOptions } from './cache-evict.decorator';
import type { CachedOptions } from './cached.decorator';
import { CACHE_EVICT_METADATA, CACHED_METADATA } from './tiered-cache.constants';
import type { GetOrSetOptions } from './tiered-cache.service';

/**
 * One decorated call, the part the explorer (provider methods) and the interceptor (controller
 * handlers) share: reading the `@Cached()` / `@CacheEvict()` metadata, building the key, and
 * assembling the `getOrSet` options and the keys to evict. The options read back from metadata
 * have their argument types erased: their functions are called with whatever the decorated
 * method was called with (the handler's request), which the decorators typed.
 */
export interface CachedCall {
  cached: CachedOptions | undefined;
  evict: CacheEvictOptions | undefined;
}

/** A provider method or a controller handler, as Nest's `Reflector` reads it. */
type Decorated = ReturnType<ExecutionContext['getHandler']>;

/** The metadata of a decorated method or handler; `undefined` when it has neither decorator. */
export function readCachedCall(reflector: Reflector, target: Decorated): CachedCall | undefined {
  const cached = reflector.get<CachedOptions | undefined>(CACHED_METADATA, target);
  const evict = reflector.get<CacheEvictOptions | undefined>(CACHE_EVICT_METADATA, target);
  return cached || evict ? { cached, evict } : undefined;
}

/**
 * The cache key of one call: `@Cached({ key })` applied to `args`, or the `key` string, else
 * `fallback()` (the default key, or `undefined` when there is none); with `namespace:` in front.
 */
export function cachedKey<Fallback extends string | undefined>(
  options: CachedOptions,
  args: unknown[],
  fallback: () => Fallback,
): string | Fallback {
  const key =
    typeof options.key === 'function'
      ? options.key(...args)
      : typeof options.key === 'string'
        ? options.key
        : fallback();
  if (key === undefined) return key;
  return options.namespace ? `${options.namespace}:${key}` : key;
}

/**
 * The `getOrSet` / `lookup` options of one call: the decorator's herd settings and `ttl`, and its
 * `condition` called with the result then `conditionArgs`. `accept`, when given, must pass too
 * (e.g. the response is cacheable); without `accept` or `condition`, every result is stored.
 */
export function getOrSetOptions(
  options: CachedOptions,
  conditionArgs: unknown[],
  accept?: (result: unknown) => boolean,
): GetOrSetOptions {
  const { condition } = options;
  return {
    ...herdOf(options),
    ttl: options.ttl,
    condition: accept
      ? (result) => accept(result) && (condition?.(result, ...conditionArgs) ?? true)
      : condition && ((result) => condition(result, ...conditionArgs)),
  };
}

/** The keys a `@CacheEvict()` names for one call, called with `args`. */
export function evictKeys(options: CacheEvictOptions, args: unknown[]): string[] {
  const keys = typeof options.keys === 'function' ? options.keys(...args) : options.keys;
  return Array.isArray(keys) ? keys : [keys];
}

/** An HTTP field name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * A list of HTTP header names at option `path`, in lower case; `fallback` when absent.
 * @throws InvalidOptionError for anything but a list of header names, naming the bad entry.
 */
export function headerNames(
  path: string,
  value: unknown,
  fallback: readonly string[],
): readonly string[] {
  if (value === undefined) return fallback;
  if (!Array.isArray(value))
    throw invalid(path, `must be a list of header names, got ${describeValue(value)}`);
  return value.map((name: unknown, i) => {
    if (typeof name !== 'string' || !HEADER_NAME.test(name)) {
      const shown = typeof name === 'string' ? JSON.stringify(name) : describeValue(name);
      throw invalid(at(path, i), `${shown} is not an HTTP header name`);
    }
    return name.toLowerCase();
  });
}
