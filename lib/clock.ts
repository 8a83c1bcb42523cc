/**
 * Where time comes from. Inject one to test TTLs by advancing time instead of sleeping
 * (the same shape as lru-cache's `perf` option).
 */
export interface Clock {
  /** Milliseconds since the Unix epoch (or any fixed origin, as long as it only moves forward). */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
