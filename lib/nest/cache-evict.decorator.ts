import { SetMetadata } from '@nestjs/common';
import { describeValue, invalid } from '../options';
import type { CacheDecorator, CacheEvictHandlerArgs } from './decorated-method';
import { CACHE_EVICT_METADATA } from './tiered-cache.constants';

/**
 * Options of {@link CacheEvict}. `Args` are what a `keys` function takes: a provider method's
 * arguments, or for a controller handler the request (see `CacheEvictHandlerArgs`); inferred from
 * the function given.
 */
export interface CacheEvictOptions<Args extends unknown[] = unknown[]> {
  /**
   * Keys to delete from every tier after the method succeeds: a key, a list, or a function of the
   * method's arguments (provider methods) or of the request (controller handlers; see
   * `CacheEvictHandlerKeys`). A `@Cached()` `namespace` is not added: name the full keys.
   */
  keys: string | string[] | ((...args: Args) => string | string[]);
}

/**
 * Deletes the named keys from every tier once the decorated method has succeeded (not when it
 * throws). The decorated method then returns a Promise. The decorator only sets metadata; on a
 * provider method, TypeScript checks a typed `keys` function against the method's parameters.
 * @throws InvalidOptionError when `keys` is missing or of the wrong type.
 */
export function CacheEvict<Args extends unknown[] = unknown[]>(
  options: CacheEvictOptions<Args>,
): CacheDecorator<Args, unknown, CacheEvictHandlerArgs> {
  const keys: unknown = options?.keys;
  if (typeof keys !== 'string' && typeof keys !== 'function' && !Array.isArray(keys)) {
    throw invalid(
      '@CacheEvict().keys',
      `must be a string, a list or a function, got ${describeValue(keys)}`,
    );
  }
  return SetMetadata(CACHE_EVICT_METADATA, options);
}
