/**
 * A thrown error kept as an entry's value (negative caching of a not-found error, see
 * `cacheEmpty.errors`): the class's name and the message, under a property name no JSON value of
 * an application uses by accident. Read-through rethrows it; plain reads (`get`, `getMany`,
 * iteration, Keyv, `CACHE_MANAGER`) see no value.
 */
export interface CachedError {
  readonly [CACHED_ERROR]: string;
  readonly message: string;
}

export const CACHED_ERROR = '\u0000tiered-cache:error';

/** Whether `value` is a {@link CachedError}. */
export function isCachedError(value: unknown): value is CachedError {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Record<string, unknown>)[CACHED_ERROR] === 'string'
  );
}

/** `value`, or `undefined` for a {@link CachedError}: what plain reads return. */
export function plainValue(value: unknown): unknown {
  return isCachedError(value) ? undefined : value;
}
