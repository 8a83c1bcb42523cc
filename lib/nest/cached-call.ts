import type { ExecutionContext } from '@nestjs/common';
import type { Reflector } from '@nestjs/core';
import { readThroughCallOf, type ReadThroughCall } from '../herd/read-through-call';
import { at, describeValue, invalid } from '../options';
import { tagList } from '../store/tag-times';
import type { CacheEvictOptions } from './cache-evict.decorator';
import type { CachedOptions } from './cached.decorator';
import { CACHE_EVICT_METADATA, CACHED_METADATA } from './tiered-cache.constants';
import type { TieredCache } from './tiered-cache.service';

/**
 * One decorated call, the part the explorer (provider methods) and the interceptor (controller
 * handlers) share: reading the `@Cached()` / `@CacheEvict()` metadata, building the key, and
 * assembling the `getOrSet` options, the entry's tags, and the keys and tags to evict. The options read back from metadata
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
 * The read-through settings of one call: the decorator's herd settings over the module's
 * (resolved once per decorator, see `TieredCache.herdFor`), its `ttl`, its `condition` called
 * with the result then `conditionArgs`, and `tags`. `accept`, when given, must pass too (e.g. the
 * response is cacheable); without `accept` or `condition`, every result is stored. A literal:
 * nothing is spread or checked per call.
 */
export function readThroughCall(
  cache: TieredCache,
  options: CachedOptions,
  conditionArgs: unknown[],
  tags: ReadThroughCall<unknown>['tags'],
  accept?: (result: unknown) => boolean,
): ReadThroughCall<unknown> {
  const { condition } = options;
  const constant = accept === undefined && condition === undefined && typeof tags !== 'function';
  if (constant) {
    // Nothing of this call's own: one settings object per decorator (and cache) serves them all.
    const known = cache.decoratorCalls.get(options);
    if (known !== undefined && known.tags === tags) return known;
  }
  const herd = cache.herdFor(options);
  const empty = cache.emptyFor(options, '@Cached().cacheEmpty');
  if (constant) {
    const call = readThroughCallOf(herd, options.ttl, undefined, tags, empty);
    cache.decoratorCalls.set(options, call);
    return call;
  }
  return readThroughCallOf(
    herd,
    options.ttl,
    accept
      ? (result) => accept(result) && (condition?.(result, ...conditionArgs) ?? true)
      : condition && ((result) => condition(result, ...conditionArgs)),
    tags,
    empty,
  );
}

/** A `tags` option as given: a list, or a function giving one. */
type TagsOption = CachedOptions['tags'] | CacheEvictOptions['tags'];

/**
 * Checks a decorator's `tags` option at decoration time: absent, a function (its results are
 * checked per call, see {@link callTags}), or a list of tags (see `tagList`).
 * @throws InvalidOptionError naming `path` for anything else, or the bad tag of a list.
 */
export function checkTagsOption(path: string, tags: unknown): void {
  if (tags === undefined || typeof tags === 'function') return;
  if (!Array.isArray(tags))
    throw invalid(path, `must be a list of strings or a function, got ${describeValue(tags)}`);
  callTags(path, tags as readonly string[], []);
}

/**
 * The checked form of each `tags` list met: checked once, when decorated, not per call (a list
 * changed afterwards keeps the tags it had then).
 */
const checkedLists = new WeakMap<readonly unknown[], readonly string[] | undefined>();

/**
 * The tags of one call, checked (a frozen list without repeats, `undefined` for none): the
 * `tags` list, or what the `tags` function returns for `args`.
 * @throws InvalidOptionError naming `path()` when the function returns anything but a list of
 *   tags, `undefined` included (e.g. `@Cached().tags(): must be a list of strings, got string`).
 */
export function callTags(
  path: string,
  tags: TagsOption,
  args: unknown[],
): readonly string[] | undefined {
  if (tags === undefined) return undefined;
  if (typeof tags !== 'function') {
    let checked = checkedLists.get(tags);
    if (checked === undefined && !checkedLists.has(tags))
      checkedLists.set(tags, (checked = tagList(path, tags)));
    return checked;
  }
  const list: unknown = tags(...args);
  // `undefined` too, which tagList takes for no tags: a function that forgot to return.
  if (!Array.isArray(list))
    throw invalid(`${path}()`, `must be a list of strings, got ${describeValue(list)}`);
  return tagList(`${path}()`, list);
}

/**
 * The tags of the entry one `@Cached()` call may compute, for `args`: the checked list, or for a
 * tags function, a thunk that read-through calls only when it computes a value (a hit costs
 * nothing more).
 */
export function cachedTags(
  options: CachedOptions,
  args: unknown[],
): readonly string[] | (() => readonly string[] | undefined) | undefined {
  const tags = options.tags;
  if (tags === undefined) return undefined;
  if (typeof tags !== 'function') return callTags('@Cached().tags', tags, args);
  return () => callTags('@Cached().tags', tags, args);
}

/**
 * The keys a `@CacheEvict()` names for one call, called with `args` (none without `keys`).
 */
export function evictKeys(options: CacheEvictOptions, args: unknown[]): string[] {
  if (options.keys === undefined) return [];
  const keys = typeof options.keys === 'function' ? options.keys(...args) : options.keys;
  return Array.isArray(keys) ? keys : [keys];
}

/**
 * Applies a `@CacheEvict()` once its method has succeeded with `args`: deletes its keys and
 * invalidates its tags (in its `mode`). Both are worked out before either is applied, so a `keys`
 * or `tags` function that throws, or `tags` returning anything but a list of tags, rejects
 * without evicting anything.
 */
export async function evict(
  cache: TieredCache,
  options: CacheEvictOptions,
  args: unknown[],
): Promise<void> {
  const keys = evictKeys(options, args);
  const tags = callTags('@CacheEvict().tags', options.tags, args);
  await Promise.all([
    keys.length > 0 ? cache.del(keys) : undefined,
    tags === undefined ? undefined : cache.invalidateTags([...tags], { mode: options.mode }),
  ]);
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
