import type { Clock } from '../clock';
import type { CassandraTierOptions } from './cassandra/cassandra.options';
import type { MemcachedTierOptions } from './memcached/memcached.options';
import type { MemoryTierOptions } from './memory/memory.options';

export type { CassandraTierOptions } from './cassandra/cassandra.options';
export type {
  MemcachedDiscoveryOptions,
  MemcachedTierOptions,
} from './memcached/memcached.options';
export type { MemoryTierOptions } from './memory/memory.options';

/** Options shared by every tier. */
export interface BaseTierOptions {
  /**
   * Upper bound, in milliseconds, on how long an entry lives in this tier, whatever TTL the caller
   * asked for. Backfills use the entry's remaining TTL capped by this. `0` or absent: no cap
   * (the memory tier has a default cap, see {@link MemoryTierOptions.ttl}).
   * @default 0 (5000 for the memory tier)
   */
  ttl?: number;
  /**
   * Name used in stats, logs and error events.
   * @default the type, suffixed `[i]` when the type repeats: `memcached`, `memcached[1]`
   */
  name?: string;
}

/** What a tier is told when it is built, besides its options. */
export interface TierContext {
  /** Name used in stats, logs and errors. Default: the tier's `name` option, else its type. */
  name?: string;
  /** Where its options sit, for error messages, e.g. `tiers[1]`. Default: its type. */
  path?: string;
  /** Time source (TTLs, failover). Default: the system clock. */
  clock?: Clock;
  /**
   * When the entry a payload holds expires, epoch ms of `clock` (`0`: never), or `undefined` when
   * the payload cannot be read: given by the store, which owns the encoding, to a tier that copies
   * payloads by itself (memcached's warm scale-out). Default: none (such copies then live at most
   * the tier's `ttl`).
   */
  expiresAt?: (payload: Buffer) => number | undefined;
}

/** Options of one built-in tier, told apart by `type`. */
export type TierOptions = MemoryTierOptions | MemcachedTierOptions | CassandraTierOptions;
