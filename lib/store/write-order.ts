const settle = (): void => undefined;

/**
 * Keeps the writes of one tier in call order, per key: a write or delete of a key starts once
 * every earlier one of that key on this tier has settled. Without it, a `set` then a `delete`
 * made at once could land the other way round: the first waits for a connection or a prepared
 * statement, or is retried on another memcached node, while the second goes straight out.
 *
 * A key's writes are serialized (each waits for the one before it); writes of different keys
 * run concurrently as before. Nothing is kept for keys with no write in flight.
 */
export class WriteOrder {
  /** The last write of each key with writes in flight, settled (never rejecting). */
  private readonly last = new Map<string, Promise<void>>();

  /** Runs `write` once the earlier writes of `keys` have settled. */
  run<T>(keys: readonly string[], write: () => Promise<T>): Promise<T> {
    let result: Promise<T>;
    if (keys.length === 1) {
      const before = this.last.get(keys[0]);
      result = before === undefined ? write() : before.then(write);
    } else {
      const before = keys.map((k) => this.last.get(k)).filter((p) => p !== undefined);
      result = before.length === 0 ? write() : Promise.all(before).then(write);
    }
    const done = result.then(settle, settle);
    for (const k of keys) this.last.set(k, done);
    void done.then(() => {
      for (const k of keys) if (this.last.get(k) === done) this.last.delete(k);
    });
    return result;
  }
}
