import { TieredCacheError } from '../errors';
import {
  at,
  describeValue,
  invalid,
  onlyKnownKeys,
  optionNames,
  positiveMilliseconds,
} from '../options';
import { CACHED_ERROR, type CachedError } from '../store/cached-error';

/** An error class a factory may throw for "not found" (e.g. Nest's `NotFoundException`). */
export type NotFoundErrorClass = new (message?: string) => Error;

/**
 * Negative caching (option `cacheEmpty` of `getOrSet`, `@Cached()` and the module): a factory
 * result of `undefined` or `null`, or one of the named errors thrown, is cached for `ttl`, so
 * that a flood of lookups of a missing id makes one origin call per `ttl`, not one per request.
 */
export interface CacheEmptyOptions {
  /** How long (ms, > 0) an empty result is cached. Usually far shorter than the entries' `ttl`. */
  ttl: number;
  /**
   * Errors the factory throws for "not found", cached as empty results: the lookups that find
   * one rethrow `new ErrorClass(message)` (the class matched by name among these, in any
   * process), without calling the factory. Any other error is never cached.
   * @default none
   */
  errors?: readonly NotFoundErrorClass[];
}

/** {@link CacheEmptyOptions}, checked. */
export interface ResolvedCacheEmpty {
  ttl: number;
  errors: readonly NotFoundErrorClass[];
}

const CACHE_EMPTY_OPTIONS = optionNames<CacheEmptyOptions>({ ttl: true, errors: true });

/**
 * The `cacheEmpty` option at `path`: `undefined` when absent (`fallback` applies), `null` for
 * `false` (off, whatever the fallback).
 * @throws InvalidOptionError naming the bad field.
 */
export function cacheEmptyOption(
  path: string,
  value: unknown,
): ResolvedCacheEmpty | null | undefined {
  if (value === undefined) return undefined;
  if (value === false) return null;
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw invalid(path, `must be false or an object { ttl, errors? }, got ${describeValue(value)}`);
  onlyKnownKeys(path, value, CACHE_EMPTY_OPTIONS);
  const options = value as CacheEmptyOptions;
  if (options.ttl === undefined) throw invalid(at(path, 'ttl'), 'is required (ms > 0)');
  const ttl = positiveMilliseconds(at(path, 'ttl'), options.ttl, 0);
  const errors = options.errors ?? [];
  if (!Array.isArray(errors))
    throw invalid(
      at(path, 'errors'),
      `must be a list of error classes, got ${describeValue(errors)}`,
    );
  errors.forEach((c: unknown, i) => {
    if (typeof c !== 'function' || !(c === Error || c.prototype instanceof Error))
      throw invalid(at(at(path, 'errors'), i), `must be an Error class, got ${describeValue(c)}`);
  });
  return { ttl, errors };
}

/** The error `err` as a cached value, when it is one of `empty.errors`; else `undefined`. */
export function errorEntry(err: unknown, empty: ResolvedCacheEmpty): CachedError | undefined {
  const matched = empty.errors.find((c) => err instanceof c);
  if (matched === undefined) return undefined;
  return { [CACHED_ERROR]: matched.name, message: (err as Error).message };
}

/**
 * The error a cached one stands for: `new ErrorClass(message)` of the class of that name among
 * this call's `errors`; a `TieredCacheError` when this call names no such class (another
 * caller of the key cached it with other options).
 */
export function rethrown(cached: CachedError, empty: ResolvedCacheEmpty | undefined): Error {
  const name = cached[CACHED_ERROR];
  const ErrorClass = empty?.errors.find((c) => c.name === name);
  if (ErrorClass !== undefined) return new ErrorClass(cached.message);
  return new TieredCacheError(
    'E_CACHED_ERROR',
    `${name}: ${cached.message} (a cached "not found" error: this call's cacheEmpty.errors do not name ${name})`,
  );
}
