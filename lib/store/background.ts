/**
 * Work the store starts without its caller waiting (backfills, generation reads), tracked so
 * that `disconnect()` lets it finish before the sockets close.
 */
export class BackgroundWork {
  private readonly pending = new Set<Promise<unknown>>();

  track<T>(work: Promise<T>): Promise<T> {
    this.pending.add(work);
    const done = () => void this.pending.delete(work);
    work.then(done, done);
    return work;
  }

  /** Resolves once nothing is pending, including work started while waiting. */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}
