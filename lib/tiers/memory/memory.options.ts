import type { BaseTierOptions } from '../tier-options';

/** In-process memory, an LRU bounded by bytes and entries. */
export interface MemoryTierOptions extends BaseTierOptions {
  type: 'memory';
  /**
   * TTL cap in ms. In front of shared tiers this is the staleness bound between app instances: a
   * write or a delete made by another instance reaches this one's memory tier at most this late.
   * `0`: no cap.
   * @default 5000 in front of a shared tier; 0 (none) when the memory tier is the only one
   */
  ttl?: number;
  /**
   * Byte budget of the LRU. An entry counts its encoded size (what memcached would hold) plus its
   * key's length; the objects the tier keeps take more heap than that (about twice, for
   * small rows).
   * @default 67108864 (64 MiB)
   */
  maxBytes?: number;
  /**
   * Entry budget of the LRU.
   * @default 100000
   */
  maxEntries?: number;
  /**
   * `true` (default): every caller gets its own copy, so mutating a returned (or a stored) object
   * never changes what the next caller gets. JSON-exact values are kept as a private tree and
   * deep-copied per read (about a twentieth of the cost of parsing them); other values (with a
   * Date, Map, BigInt…) are kept encoded and decoded per read. `false`: stores and returns the
   * very object that was set, faster still, but callers must treat cached values as immutable.
   * @default true
   */
  serialize?: boolean;
}

/** Defaults of {@link MemoryTierOptions}. */
export const MEMORY_DEFAULTS = {
  maxBytes: 64 * 1024 * 1024,
  maxEntries: 100_000,
} as const;
