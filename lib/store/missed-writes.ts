import type { Clock } from '../clock';

/**
 * Missed writes remembered per tier; past it, a tier that comes back may serve older values of
 * the keys it missed beyond these until their TTL.
 */
const MAX_MISSED = 100_000;

/**
 * What one shared tier may hold that must not be served:
 * - the tier keys whose last write or delete it missed (it failed, or its circuit was open), at
 *   most {@link MAX_MISSED}: it may still hold an older value there, so reads treat them as
 *   misses until a write of the key lands or the store has deleted it there (its slot replays
 *   the deletes as soon as the tier answers again);
 * - everything, for a while, after {@link distrust}.
 */
export class MissedWrites {
  private readonly keys = new Set<string>();
  /** Until then (clock ms) nothing the tier holds is served. */
  private distrustUntil = 0;

  /** @param cap the tier's TTL cap, ms (0: none). */
  constructor(
    private readonly clock: Clock,
    private readonly cap: number,
  ) {}

  get size(): number {
    return this.keys.size;
  }

  /** Whether the copy at tier key `at` must not be served. */
  has(at: string): boolean {
    if (this.distrustUntil > 0 && !this.trusted()) return true;
    return this.keys.size > 0 && this.keys.has(at);
  }

  /** Records whether a write or delete of the tier keys `at` landed. */
  landed(at: readonly string[], ok: boolean): void {
    if (ok) {
      if (this.keys.size > 0) for (const k of at) this.keys.delete(k);
      return;
    }
    for (const k of at) if (this.keys.size < MAX_MISSED) this.keys.add(k);
  }

  /** Whether tier key `at` is one whose last write or delete was missed. */
  includes(at: string): boolean {
    return this.keys.has(at);
  }

  /** The `n` oldest missed keys. */
  first(n: number): string[] {
    return [...this.keys].slice(0, n);
  }

  /**
   * Forgets what the tier holds without flushing its server (other namespaces may share it):
   * nothing in it is served until every entry written before now has expired, that is for its
   * TTL cap; what is written meanwhile is served after that. A tier without a cap cannot be
   * forgotten this way: it keeps serving.
   */
  distrust(): void {
    if (this.cap > 0) this.distrustUntil = this.clock.now() + this.cap;
  }

  private trusted(): boolean {
    if (this.clock.now() < this.distrustUntil) return false;
    this.distrustUntil = 0;
    return true;
  }
}
