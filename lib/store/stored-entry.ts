import type { CacheRecord, EntryMeta } from '../serialization/codec';

/**
 * An entry as read-through sees it (see `TieredStore.getEntry`): the value with its logical
 * expiry (`staleAt`), its physical one (`expiresAt`, grace included) and its compute time.
 * Entries written by plain `set` have `staleAt === expiresAt` and `delta` 0.
 */
export interface StoredEntry<T = unknown> {
  value: T;
  /** Epoch ms after which the value is stale; `0` = never. */
  staleAt: number;
  /** Epoch ms after which the entry is gone from every tier; `0` = never. */
  expiresAt: number;
  /** How long the value took to compute, in ms (0 when unknown). */
  delta: number;
}

/** Options of `TieredStore.set`, when more than a TTL. */
export interface SetOptions {
  /** TTL in ms (default: the store's `ttl`; `0` = no expiry). */
  ttl?: number;
  /**
   * Tags of the entry: `invalidateTags` of any of them covers it (at most 64, each at most 256
   * bytes of UTF-8).
   */
  tags?: readonly string[];
}

/** One entry of `TieredStore.setMany`. */
export interface SetManyEntry extends SetOptions {
  key: string;
  value: unknown;
}

/** Options of `TieredStore.setEntry`. */
export interface SetEntryOptions {
  /** Logical TTL in ms (default: the store's `ttl`; 0 = never stale). */
  ttl?: number;
  /** Extra ms the entry stays readable as stale after `ttl` (the physical TTL is `ttl + grace`). */
  grace?: number;
  /** How long the value took to compute, in ms (XFetch's delta). */
  delta?: number;
  /**
   * A `TieredStore.mutationMark()`: when this store wrote or deleted the key since that mark,
   * nothing is written (that newer mutation wins) and `setEntry` resolves false.
   */
  unchangedSince?: number;
  /** Tags of the entry (see {@link SetOptions.tags}). */
  tags?: readonly string[];
  /**
   * When the value was computed (epoch ms, the store's clock): an invalidation of one of its
   * tags from then on covers it. Default: now.
   */
  taggedAt?: number;
}

/** What `TieredStore.acquireLease` did. */
export type LeaseOutcome =
  /** This caller holds the lease, on a shared tier. */
  | 'acquired'
  /** Another holder has it. */
  | 'held'
  /** No shared tier can hold leases (none configured, or it failed): coordinate in-process only. */
  | 'local';

/**
 * Whether an entry or record is past its logical expiry. Plain entries (no `staleAt`) and
 * `staleAt` 0 never are.
 */
export function isStale(entry: { staleAt?: number }, now: number): boolean {
  const staleAt = entry.staleAt;
  return staleAt !== undefined && staleAt !== 0 && staleAt <= now;
}

/**
 * The read-through view of a decoded record: the record itself when it is a read-through entry
 * (it has every field already; a hit allocates nothing more), else a view of it.
 */
export function toEntry<T>(record: CacheRecord): StoredEntry<T> {
  if (record.staleAt !== undefined && record.delta !== undefined)
    return record as CacheRecord<T> as StoredEntry<T>;
  return {
    value: record.value as T,
    expiresAt: record.expiresAt,
    staleAt: record.staleAt ?? record.expiresAt,
    delta: record.delta ?? 0,
  };
}

/** The read-through metadata a record carries, to store it again (backfill). */
export function metaOf(record: CacheRecord): EntryMeta | undefined {
  return record.staleAt === undefined
    ? undefined
    : { staleAt: record.staleAt, delta: record.delta ?? 0 };
}
