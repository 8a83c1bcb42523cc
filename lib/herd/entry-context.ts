import { TieredCacheError } from '../errors';
import { milliseconds } from '../options';
import { checkTags } from '../store/tag-times';

/**
 * What a read-through factory may say about the entry it computes (adaptive entries): given to a
 * `getOrSet` factory as its argument, to a `@Cached()` method through {@link cacheEntryContext},
 * to a `@Cached()` handler through the `@CacheEntry()` parameter. Settings made after the value
 * is stored (a factory that goes on after returning) change nothing.
 */
export interface CacheEntryContext<T = unknown> {
  /**
   * The stale entry this call refreshes (past its TTL, within grace, or due for early refresh),
   * e.g. to send a conditional request upstream; `undefined` on a plain miss.
   */
  readonly stale: { readonly value: T; readonly staleAt: number } | undefined;
  /** This entry's TTL in ms (`0`: never stale), instead of the call's. */
  setTtl(ttl: number): void;
  /** This entry's grace in ms (how long it may be served stale after its TTL), instead of the call's. */
  setGrace(grace: number): void;
  /** This entry's tags, instead of the call's (see `TieredCache.invalidateTags`). */
  setTags(tags: readonly string[]): void;
  /** Do not store this value (it is still returned to the callers of this computation). */
  skip(): void;
}

/** A read-through factory: it may take its entry's context (see {@link CacheEntryContext}). */
export type Factory<T> = (context: CacheEntryContext<T>) => T | Promise<T>;

/** A {@link CacheEntryContext} and what it was told. */
export class EntryContext<T> implements CacheEntryContext<T> {
  ttl: number | undefined;
  grace: number | undefined;
  tags: readonly string[] | undefined;
  tagsSet = false;
  skipped = false;

  constructor(readonly stale: { readonly value: T; readonly staleAt: number } | undefined) {}

  setTtl(ttl: number): void {
    this.ttl = milliseconds('cache entry context setTtl(ttl)', ttl, 0);
  }

  setGrace(grace: number): void {
    this.grace = milliseconds('cache entry context setGrace(grace)', grace, 0);
  }

  setTags(tags: readonly string[]): void {
    this.tags = checkTags('cache entry context setTags(tags)', tags) ?? [];
    this.tagsSet = true;
  }

  skip(): void {
    this.skipped = true;
  }
}

/** The context of the factory running synchronously now (see {@link withEntryContext}). */
let current: EntryContext<unknown> | undefined;

/**
 * Calls `factory` with `context`, which {@link cacheEntryContext} returns while the factory runs
 * synchronously (until its first `await`). Nothing is tracked across `await`s: that would need
 * async context tracking, which slows every promise of the host application.
 */
export function withEntryContext<T>(context: EntryContext<T>, factory: Factory<T>): T | Promise<T> {
  const outer = current;
  current = context as EntryContext<unknown>;
  try {
    return factory(context);
  } finally {
    current = outer;
  }
}

/**
 * The entry context of the `@Cached()` method (or `getOrSet` factory) being computed: call it
 * at the start of the method, before its first `await`, and keep what it returns; its settings
 * may be made at any time before the method's value is returned. On a hit the method is not
 * called at all.
 * @throws TieredCacheError `E_NO_ENTRY_CONTEXT` when no cached computation is running
 *   synchronously (called after an `await`, or outside a cached method).
 */
export function cacheEntryContext<T = unknown>(): CacheEntryContext<T> {
  if (current === undefined)
    throw new TieredCacheError(
      'E_NO_ENTRY_CONTEXT',
      'cacheEntryContext() was called outside a cached computation: call it at the start of a ' +
        '@Cached() method (before its first await); a getOrSet factory gets the context as its argument',
    );
  return current as EntryContext<T>;
}
