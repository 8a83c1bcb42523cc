/** What a read-through call answered with. */
export type CacheStatus =
  /** Read from a tier (possibly after waiting for another caller or process to store it). */
  | 'HIT'
  /** Computed by this call, or by the in-process call it joined. */
  | 'MISS'
  /** Past its TTL but within its grace period; a refresh is under way or has failed. */
  | 'STALE';

/** What a read-through call found: the value and where it came from. */
export interface CacheLookup<T> {
  value: T;
  status: CacheStatus;
  /** Whether the value is (now) in the cache: false when `condition` refused a computed value. */
  stored: boolean;
  /**
   * When the value turns (turned) stale, epoch ms of the store's clock; `0`: never. Known for
   * values read from the cache and for computed values stored; else `undefined`.
   */
  staleAt?: number;
}
