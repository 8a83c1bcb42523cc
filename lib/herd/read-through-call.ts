import type { ResolvedCacheEmpty } from './cache-empty';
import type { ResolvedHerdOptions } from './herd.options';

/** One read-through call's settings. */
export interface ReadThroughCall<T> extends ResolvedHerdOptions {
  /** Logical TTL in ms; `undefined` = the store's default. */
  ttl: number | undefined;
  /** Store the computed value only when this returns true. */
  condition: ((value: T) => boolean) | undefined;
  /**
   * Tags of the computed entry (checked by the store), or a function giving them, called only
   * when a value is computed (before the factory; what it throws rejects the call).
   */
  tags?: readonly string[] | (() => readonly string[] | undefined);
  /** Negative caching: empty results (and the named errors) are stored for its `ttl`. */
  empty?: ResolvedCacheEmpty;
}

/**
 * A {@link ReadThroughCall} of resolved herd settings and the call's own. A literal, not a spread
 * of `herd`: properties added after a spread cost microseconds on a hit.
 */
export function readThroughCallOf<T>(
  herd: ResolvedHerdOptions,
  ttl: number | undefined,
  condition: ReadThroughCall<T>['condition'],
  tags: ReadThroughCall<T>['tags'],
  empty: ResolvedCacheEmpty | undefined,
): ReadThroughCall<T> {
  return {
    grace: herd.grace,
    lockTimeout: herd.lockTimeout,
    beta: herd.beta,
    timeout: herd.timeout,
    hardTimeout: herd.hardTimeout,
    ttl,
    condition,
    tags,
    empty,
  };
}
