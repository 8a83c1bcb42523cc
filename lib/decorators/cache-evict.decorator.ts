import { SetMetadata } from '@nestjs/common';
import { CACHE_EVICT_METADATA } from '../tiered-cache.constants';

/** Options of {@link CacheEvict}. */
export interface CacheEvictOptions {
  /**
   * Keys to delete from every tier after the method succeeds: a key, a list, or a function of the
   * method's arguments (provider methods) or of the request (controller handlers).
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the method's own arguments
  keys: string | string[] | ((...args: any[]) => string | string[]);
}

/**
 * Deletes the named keys from every tier once the decorated method has succeeded (not when it
 * throws). The decorated method then returns a Promise. The decorator only sets metadata.
 */
export function CacheEvict(options: CacheEvictOptions): MethodDecorator {
  const keys = options?.keys;
  if (typeof keys !== 'string' && typeof keys !== 'function' && !Array.isArray(keys)) {
    throw new TypeError('@CacheEvict({ keys }): keys must be a string, a list or a function');
  }
  return SetMetadata(CACHE_EVICT_METADATA, options);
}

/** The keys a {@link CacheEvictOptions} names for one call. */
export function evictKeys(options: CacheEvictOptions, args: unknown[]): string[] {
  const keys = typeof options.keys === 'function' ? options.keys(...args) : options.keys;
  return Array.isArray(keys) ? keys : [keys];
}
