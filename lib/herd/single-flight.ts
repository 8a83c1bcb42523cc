import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * In-process single flight: concurrent callers of one key share one call of `fn`
 * (the groupcache primitive). The caller re-checks the cache inside `fn`.
 *
 * Re-entrant: a call made from inside the flight of the same key (a cached handler calling a
 * cached method under the same key, say) runs directly instead of waiting for itself.
 */
export class SingleFlight {
  private readonly flights = new Map<string, Promise<unknown>>();
  private readonly held = new AsyncLocalStorage<ReadonlySet<string>>();

  /** Number of keys with a call in flight. */
  get size(): number {
    return this.flights.size;
  }

  /** Whether the current async context runs inside the flight of `key` (a re-entrant call). */
  holds(key: string): boolean {
    return this.held.getStore()?.has(key) ?? false;
  }

  /** Runs `fn` unless a call for `key` is already in flight; then shares that call's outcome. */
  do<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const held = this.held.getStore();
    if (held?.has(key)) return fn();
    const inFlight = this.flights.get(key);
    if (inFlight) return inFlight as Promise<T>;
    const keys = new Set(held).add(key);
    // fn starts a microtask later, so the flight is registered before it can settle.
    const flight = Promise.resolve()
      .then(() => this.held.run(keys, fn))
      .finally(() => this.flights.delete(key));
    this.flights.set(key, flight);
    return flight;
  }
}
