import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Where a read-through lease measures its waits and pauses between polls. Separate from the
 * cache's `clock` option (which dates entries, and may be a manual clock in an application's
 * tests): lease waits must always run out.
 */
export interface WaitClock {
  /** Milliseconds from any fixed origin; only moves forward. */
  now(): number;
  /** Resolves after `ms` milliseconds. */
  sleep(ms: number): Promise<void>;
}

/** Monotonic time and real timers. */
export const monotonicWaitClock: WaitClock = {
  now: () => performance.now(),
  sleep: (ms) => sleep(ms),
};
