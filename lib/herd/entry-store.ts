import type { LeaseOutcome, SetEntryOptions, StoredEntry } from '../store/stored-entry';

/**
 * What read-through needs of a store: entries with their metadata, mutation marks, and leases
 * on the tier that holds them. `TieredStore` implements it; read-through knows nothing else of
 * the store or its tiers.
 */
export interface EntryStore {
  /** The entry in the nearest (local) tier, synchronously, stale ones included. */
  peekEntry<T>(key: string): StoredEntry<T> | undefined;
  /** The entry, stale ones included, from every tier or only the shared / lease ones. */
  getEntry<T>(
    key: string,
    options?: { scope?: 'all' | 'shared' | 'lease' },
  ): Promise<StoredEntry<T> | undefined>;
  setEntry(key: string, value: unknown, options: SetEntryOptions): Promise<boolean>;
  delete(key: string): Promise<boolean>;
  /** A time for `SetEntryOptions.taggedAt` (see `TagTimes.stamp`). */
  tagStamp(): number;
  /** A mark for `SetEntryOptions.unchangedSince`. */
  mutationMark(): number;
  /** The key of `key`'s lease (built once per computed value). */
  leaseKey(key: string): string;
  acquireLease(leaseKey: string, token: Buffer, ttlMs: number): Promise<LeaseOutcome>;
  /** The token holding the lease; `undefined` when none; `null` when it cannot be read. */
  leaseHolder(leaseKey: string): Promise<Buffer | undefined | null>;
  releaseLease(leaseKey: string, token: Buffer): Promise<void>;
  /** The TTL of entries written without one, ms (`0`: no expiry). */
  readonly defaultTtl: number;
  /** The lease tier's TTL resolution, ms: a lease may end up to this much before its TTL. */
  readonly leaseTtlResolutionMs: number;
}
