import { SetMetadata } from '@nestjs/common';
import { describeValue, invalid, onlyKnownKeys, optionNames, optionsObject } from '../options';
import type { TagMode } from '../store/tag-times';
import { checkTagsOption } from './cached-call';
import { routeDecorator } from './cached-route.interceptor';
import type { CacheDecorator, CacheEvictHandlerArgs } from './decorated-method';
import { CACHE_EVICT_METADATA } from './tiered-cache.constants';

/**
 * Options of {@link CacheEvict}: `keys`, `tags` or both. `Args` are what a `keys` or `tags`
 * function takes: a provider method's arguments, or for a controller handler the request (see
 * `CacheEvictHandlerArgs`); inferred from the functions given.
 */
export interface CacheEvictOptions<Args extends unknown[] = unknown[]> {
  /**
   * Keys to delete from every tier after the method succeeds: a key, a list, or a function of the
   * method's arguments (provider methods) or of the request (controller handlers; see
   * `CacheEvictHandlerKeys`). A `@Cached()` `namespace` is not added: name the full keys.
   */
  keys?: string | string[] | ((...args: Args) => string | string[]);
  /**
   * Tags to invalidate after the method succeeds (see `TieredCache.invalidateTags`): a list, or a
   * function of the method's arguments (provider methods) or of the request (controller
   * handlers; see `CacheEvictHandlerTags`) returning one. A function returning anything but a
   * list of tags rejects the call (`@CacheEvict().tags(): …`), after the method, without evicting
   * anything.
   */
  tags?: readonly string[] | ((...args: Args) => readonly string[]);
  /**
   * How `tags` are invalidated (only with `tags`): `'delete'` makes their entries misses,
   * `'expire'` stale (a `@Cached()` with `grace` serves them, `X-Cache: STALE`, while one caller
   * refreshes them; without grace they are misses too).
   * @default 'delete'
   */
  mode?: TagMode;
}

const WHERE = '@CacheEvict()';

const CACHE_EVICT_OPTIONS = optionNames<CacheEvictOptions>({ keys: true, tags: true, mode: true });

/**
 * Deletes the named keys from every tier and invalidates the named tags once the decorated method
 * has succeeded (not when it throws). The decorated method then returns a Promise. The decorator
 * only sets metadata; on a provider method, TypeScript checks typed `keys` and `tags` functions
 * against the method's parameters.
 * @throws InvalidOptionError when neither `keys` nor `tags` is given, for an option of the wrong
 *   type, a bad tag in a `tags` list, a `mode` without `tags`, or an unknown option
 *   (`@CacheEvict().tag: unknown option (did you mean "tags"?)`).
 */
export function CacheEvict<Args extends unknown[] = unknown[]>(
  options: CacheEvictOptions<Args>,
): CacheDecorator<Args, unknown, CacheEvictHandlerArgs> {
  const { keys, tags, mode } = optionsObject<CacheEvictOptions<Args>>(WHERE, options);
  onlyKnownKeys(WHERE, options ?? {}, CACHE_EVICT_OPTIONS);
  if (keys === undefined && tags === undefined)
    throw invalid(WHERE, 'needs keys, tags or both, got neither');
  if (
    keys !== undefined &&
    typeof keys !== 'string' &&
    typeof keys !== 'function' &&
    !Array.isArray(keys)
  ) {
    throw invalid(
      `${WHERE}.keys`,
      `must be a string, a list or a function, got ${describeValue(keys)}`,
    );
  }
  checkTagsOption(`${WHERE}.tags`, tags);
  if (mode !== undefined && mode !== 'delete' && mode !== 'expire') {
    const shown = typeof mode === 'string' ? JSON.stringify(mode) : describeValue(mode);
    throw invalid(`${WHERE}.mode`, `must be 'delete' or 'expire', got ${shown}`);
  }
  if (mode !== undefined && tags === undefined)
    throw invalid(`${WHERE}.mode`, 'applies to tags, and there are none');
  return routeDecorator(SetMetadata(CACHE_EVICT_METADATA, options)) as CacheDecorator<
    Args,
    unknown,
    CacheEvictHandlerArgs
  >;
}
