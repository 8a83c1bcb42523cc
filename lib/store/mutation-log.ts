/** Keys remembered before the log forgets per-key history (bounded memory). */
const MAX_KEYS = 10_000;

/**
 * The local writes, deletes and increments of each final key, numbered, so that a slow read never
 * backfills over a newer mutation and a read-through refresh never writes over a newer delete.
 *
 * A read takes a {@link mark} before it starts; {@link changedSince} then tells whether the key was
 * mutated after it. {@link startOver} (a new generation, or a full log) makes every earlier mark
 * stale at once.
 */
export class MutationLog {
  private seq = 0;
  private floor = 0;
  private readonly last = new Map<string, number>();

  /** Records a mutation of final key `k`. */
  mutated(k: string): void {
    this.last.set(k, ++this.seq);
    if (this.last.size > MAX_KEYS) {
      // Forget per-key history; reads begun before now skip their backfill.
      this.last.clear();
      this.startOver();
    }
  }

  /** A mark to compare later mutations against. */
  mark(): number {
    return this.seq;
  }

  /** Whether `k` was mutated, or everything started over, after `mark`. */
  changedSince(k: string, mark: number): boolean {
    return this.floor > mark || (this.last.get(k) ?? -1) > mark;
  }

  /** Whether everything started over after `mark` (a key-independent, cheaper check). */
  startedOverSince(mark: number): boolean {
    return mark < this.floor;
  }

  /** Invalidates every mark taken so far. */
  startOver(): void {
    this.floor = ++this.seq;
  }
}
