import type { CacheEvents } from '../store/cache-events';
import type { EntryContext } from './entry-context';
import type { EntryStore } from './entry-store';
import type { Lease } from './lease';
import type { ReadThroughCall } from './read-through-call';

/** How one computed value is stored: its TTL, grace and tags (`undefined`: the store's TTL). */
export interface ComputedEntry {
  ttl: number | undefined;
  grace: number;
  tags: readonly string[] | undefined;
  /** When the computation began, for the tags (see `SetEntryOptions.taggedAt`). */
  taggedAt: number;
  /** How long the value took, ms (XFetch's delta). */
  delta: number;
}

/**
 * How `value`, computed by a call with settings `call` whose factory told `context` what it
 * wanted, is stored; `undefined` when it is not stored: the factory skipped it, `condition`
 * refused it, or it is `undefined` without negative caching. An empty result (`undefined`,
 * `null`) under `cacheEmpty` gets the negative TTL unless the factory set its own; `condition`
 * is never given `undefined`. `callTags` are the call's tags, worked out before the factory ran.
 */
export function computedEntry<T>(
  value: T,
  call: ReadThroughCall<T>,
  context: EntryContext<T>,
  callTags: readonly string[] | undefined,
  taggedAt: number,
  delta: number,
): ComputedEntry | undefined {
  if (context.skipped) return undefined;
  const empty = value === undefined || value === null;
  if (value === undefined ? call.empty === undefined : !(call.condition?.(value) ?? true))
    return undefined;
  return {
    ttl: context.ttl ?? (empty && call.empty !== undefined ? call.empty.ttl : call.ttl),
    grace: context.grace ?? call.grace,
    tags: context.tagsSet ? context.tags : callTags,
    taggedAt,
    delta,
  };
}

/**
 * Stores a computed value, unless the key was deleted while it was computed: through this store
 * (its mutation mark), or anywhere (the delete removed our lease). Checked before the write and
 * again after it; a delete that lands in between is undone. Resolves whether it was stored.
 */
export async function storeComputed(
  store: EntryStore,
  events: CacheEvents | undefined,
  key: string,
  value: unknown,
  entry: ComputedEntry,
  mark: number,
  lease: Lease,
): Promise<boolean> {
  if (lease.outcome === 'acquired' && (await lease.lost())) return leaseLost(events, key);
  const written = await store.setEntry(key, value, {
    ttl: entry.ttl,
    grace: entry.grace,
    delta: entry.delta,
    unchangedSince: mark,
    tags: entry.tags,
    taggedAt: entry.taggedAt,
  });
  if (written && lease.outcome === 'acquired' && (await lease.lost())) {
    await store.delete(key);
    return leaseLost(events, key);
  }
  return written;
}

/** The lease was taken from this caller: nothing is stored. */
function leaseLost(events: CacheEvents | undefined, key: string): false {
  events?.emit('lease', { key, outcome: 'lost' });
  return false;
}
