/**
 * Where time comes from. Inject one to test TTLs by advancing time instead of sleeping
 * (the same shape as lru-cache's `perf` option).
 */
export interface Clock {
  /** Milliseconds since the Unix epoch (or any fixed origin, as long as it only moves forward). */
  now(): number;
}

let cachedNow = 0;
const forget = () => void (cachedNow = 0);

/**
 * The default clock: `Date.now()` read at most once per millisecond. A clock read costs about as
 * much as a whole memory-tier hit on some virtual machines; a 1 ms resolution is plenty for cache
 * TTLs (lru-cache's `ttlResolution` does the same). The timer that forgets the reading is unref'd.
 */
export const systemClock: Clock = {
  now: () => {
    if (cachedNow === 0) {
      cachedNow = Date.now();
      setTimeout(forget, 1).unref();
    }
    return cachedNow;
  },
};

/**
 * Resolves once `work` has settled or `ms` have passed, whichever comes first (never rejects).
 * The timer does not keep the process alive, and is cleared when `work` wins.
 */
export async function waitAtMost(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    work.then(
      () => undefined,
      () => undefined,
    ),
    new Promise((resolve) => (timer = setTimeout(resolve, ms).unref())),
  ]);
  clearTimeout(timer);
}
