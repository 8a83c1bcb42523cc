import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import type { Clock } from '../clock';
import type { CacheEvents, OriginOutcome } from '../store/cache-events';
import { isStale, type StoredEntry } from '../store/stored-entry';
import { isCachedError, type CachedError } from '../store/cached-error';
import { errorEntry, rethrown } from './cache-empty';
import type { CacheLookup } from './cache-lookup';
import { computedEntry, storeComputed } from './computed-entry';
import { shouldRefreshEarly } from './early-refresh';
import { EntryContext, withEntryContext, type Factory } from './entry-context';
import type { EntryStore } from './entry-store';
import { withHardTimeout } from './hard-timeout';
import { Lease } from './lease';
import type { ReadThroughCall } from './read-through-call';
import { OverdueWait } from './overdue-wait';
import { SingleFlight } from './single-flight';
import { monotonicWaitClock, type WaitClock } from './wait-clock';

export type { CacheLookup, CacheStatus } from './cache-lookup';

/**
 * Wraps lookups in a trace span (`CacheTracing`): {@link lookup} runs `run` in its span and returns
 * what it returns. With `localHits` false, a fresh memory-tier hit that needs nothing more is
 * answered without it.
 */
export interface LookupTracer {
  readonly localHits: boolean;
  lookup<T>(key: string, run: () => Promise<CacheLookup<T>>): Promise<CacheLookup<T>>;
}

export interface ReadThroughHooks {
  clock: Clock;
  /** Traces lookups (a span each, around the read and the factory call). */
  tracer?: LookupTracer;
  /** Called for every failure nobody awaits: background refreshes, lease releases. */
  onBackgroundError(key: string, error: unknown): void;
  /** The store's events: stale serves, origin calls, leases and failed refreshes are told there. */
  events?: CacheEvents;
  /**
   * A factory call has run past `lockTimeout` while callers of this process waited for it: they
   * are answered by one more call of it (see {@link ReadThrough}).
   */
  onOverdue?(key: string, lockTimeout: number): void;
  /** Source of XFetch's randomness. Default `Math.random`. */
  random?: () => number;
  /** What lease waits are timed on. Default: monotonic time and real timers. */
  waitClock?: WaitClock;
}

/**
 * Read-through with thundering-herd protection, the engine of `TieredCache.getOrSet` and
 * `@Cached()`:
 *
 * - one factory call per key per process (single flight, re-checking the cache inside it), and
 *   one read of the remote tiers for concurrent callers that miss the memory tier (they share
 *   the decoded value, as callers joining one factory call share its result);
 * - one per key across processes: a lease on the shared tiers (see {@link Lease});
 *   other processes poll for the value with backoff, up to `lockTimeout`, then compute
 *   themselves, unless a new holder took a crashed one's lease over: then they wait for it;
 * - stale-while-revalidate within `grace`, early refresh (XFetch), fail-safe on factory errors,
 *   soft and hard timeouts;
 * - a delete made while a refresh is in flight wins: the refresh's value is not written back.
 *
 * A factory that calls a lookup of its own key (a cached handler calling a cached method under
 * the same key) must not wait for itself. Such a call made while the factory runs synchronously
 * (before its first `await`) is recognised and calls its own factory at once. One made later
 * cannot be told from any other caller without tracking async context (which would slow every
 * promise of the host app), so it waits as callers do; callers waiting in this process for a
 * factory call that has run `lockTimeout` are answered by one more call of the factory (one per
 * key, not stored: the first call stores its value when it ends), which also ends such a wait.
 */
export class ReadThrough {
  /** Refreshes (re-check, lease, compute, store), one per key. */
  private readonly flights = new SingleFlight();
  /** Reads past the memory tier, one per key. */
  private readonly reads = new SingleFlight();
  /** Calls of factories that ran past `lockTimeout` while callers waited, one per key. */
  private readonly overdue = new SingleFlight();
  /** Keys whose factory is running synchronously now: a lookup of one is a re-entrant call. */
  private readonly calling = new Set<string>();
  /** The flights of {@link flights}: when their factory call began, and who waits for it. */
  private readonly overdueWaits = new Map<string, OverdueWait>();
  private readonly holder = `${hostname()}:${process.pid}`;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly waitClock: WaitClock;

  constructor(
    private readonly store: EntryStore,
    private readonly hooks: ReadThroughHooks,
  ) {
    this.clock = hooks.clock;
    this.random = hooks.random ?? Math.random;
    this.waitClock = hooks.waitClock ?? monotonicWaitClock;
  }

  /** Keys with a factory call (or a wait for another process) in flight in this process. */
  get inFlight(): number {
    return this.flights.size;
  }

  /** The value of `key`: read, or computed with one factory call per key (see the class note). */
  lookup<T>(key: string, factory: Factory<T>, call: ReadThroughCall<T>): Promise<CacheLookup<T>> {
    const found = this.lookupNow(key, factory, call);
    return found instanceof Promise ? found : Promise.resolve(found);
  }

  /** {@link lookup}, answered synchronously when the memory tier's entry answers alone. */
  lookupNow<T>(
    key: string,
    factory: Factory<T>,
    call: ReadThroughCall<T>,
  ): CacheLookup<T> | Promise<CacheLookup<T>> {
    const started = this.start(key, factory, call);
    if (started instanceof Promise) return started;
    if (isCachedError(started.value)) return Promise.reject(rethrown(started.value, call.empty));
    return { value: started.value, status: 'HIT', stored: true, staleAt: started.staleAt };
  }

  /**
   * {@link lookup}'s value alone (`getOrSet`, `@Cached` methods), as `read` makes it of what is
   * stored: a hit allocates nothing more.
   */
  value<T>(
    key: string,
    factory: Factory<T>,
    call: ReadThroughCall<T>,
    read: (stored: T) => T = same,
  ): Promise<T> {
    const started = this.start(key, factory, call);
    if (started instanceof Promise) return started.then((found) => read(found.value));
    if (isCachedError(started.value)) return Promise.reject(rethrown(started.value, call.empty));
    return Promise.resolve(read(started.value));
  }

  /**
   * A lookup's start: the memory tier's entry when it answers alone (fresh, no early refresh to
   * weigh, no span to make), found synchronously; else the whole lookup, under the tracer's span.
   */
  private start<T>(
    key: string,
    factory: Factory<T>,
    call: ReadThroughCall<T>,
  ): StoredEntry<T> | Promise<CacheLookup<T>> {
    if (this.calling.size > 0 && this.calling.has(key)) {
      // Called from inside this key's own factory (a cached handler calling a cached method under
      // the same key): the outer call stores the key; waiting here would wait for itself.
      return reentered(factory);
    }
    // The memory tier answers synchronously (a bad key is a rejection, as from any lookup).
    let local: StoredEntry<T> | undefined;
    try {
      local = this.store.peekEntry<T>(key);
    } catch (err) {
      return Promise.reject(err);
    }
    const tracer = this.hooks.tracer;
    if (
      local !== undefined &&
      !(call.beta > 0 && local.delta > 0) &&
      !tracer?.localHits &&
      !isStale(local, this.clock.now())
    )
      return local;
    const answer = () =>
      this.answer(key, factory, call, local).then((found) => unmarked(found, call));
    return tracer === undefined ? answer() : tracer.lookup(key, answer);
  }

  /** {@link lookup} past the re-entry check, given what the memory tier holds. */
  private async answer<T>(
    key: string,
    factory: Factory<T>,
    call: ReadThroughCall<T>,
    local: StoredEntry<T> | undefined,
  ): Promise<CacheLookup<T>> {
    // Past the memory tier, concurrent callers share one read of the remote tiers (a burst on a
    // cold key costs one lookup per tier, not one per caller).
    const entry = local ?? (await this.reads.do(key, () => this.store.getEntry<T>(key)));
    if (entry !== undefined) {
      const now = this.clock.now();
      if (!isStale(entry, now)) {
        if (call.beta > 0 && shouldRefreshEarly(entry, now, call.beta, this.random))
          void this.refresh(key, factory, call, entry).catch((err) => this.refreshFailed(key, err));
        return { value: entry.value, status: 'HIT', stored: true, staleAt: entry.staleAt };
      }
      return this.serveStale(key, factory, call, entry);
    }
    const refresh = this.refresh(key, factory, call, undefined);
    return call.hardTimeout > 0 ? withHardTimeout(refresh, key, call.hardTimeout) : refresh;
  }

  /** A stale entry: answered at once (or after `timeout`) while one refresh runs. */
  private serveStale<T>(
    key: string,
    factory: Factory<T>,
    call: ReadThroughCall<T>,
    entry: StoredEntry<T>,
  ): Promise<CacheLookup<T>> {
    const stale: CacheLookup<T> = {
      value: entry.value,
      status: 'STALE',
      stored: true,
      staleAt: entry.staleAt,
    };
    const refresh = this.refresh(key, factory, call, entry);
    // Fail-safe: a failed refresh leaves the stale value in place and is reported once.
    const settled = refresh.catch((err: unknown) => {
      this.refreshFailed(key, err);
      return stale;
    });
    this.hooks.events?.emit('stale', { key });
    if (call.timeout === 0) return Promise.resolve(stale);
    const ac = new AbortController();
    return Promise.race([
      settled.finally(() => ac.abort()),
      sleep(call.timeout, stale, { signal: ac.signal }).catch(() => stale),
    ]);
  }

  /**
   * The flight of `key`: lease, re-check, compute, store. With `stale` (a stale entry, or a fresh
   * one due for early refresh), this runs in the background of callers already answered with
   * it, and never computes without the lease.
   */
  private refresh<T>(
    key: string,
    factory: Factory<T>,
    call: ReadThroughCall<T>,
    stale: StoredEntry<T> | undefined,
  ): Promise<CacheLookup<T>> {
    const running = this.flights.get<CacheLookup<T>>(key);
    if (running !== undefined) return this.join(key, factory, running);
    const wait = new OverdueWait(call.lockTimeout);
    this.overdueWaits.set(key, wait);
    const flight = this.flights.do(key, async (): Promise<CacheLookup<T>> => {
      const mark = this.store.mutationMark();
      const lease = new Lease(this.store, key, call, this.holder, this.waitClock);
      await lease.acquire();
      this.hooks.events?.emit('lease', {
        key,
        outcome: lease.outcome === 'held' ? 'waited' : lease.outcome,
      });
      if (lease.outcome === 'held') {
        const waited = await lease.waitForOther<T>((e) => this.replaces(e, stale));
        if (waited !== undefined)
          return { value: waited.value, status: 'HIT', stored: true, staleAt: waited.staleAt };
        if (stale !== undefined && lease.outcome === 'held') {
          // Still held by a live holder: keep serving stale, leave the refresh to it.
          return { value: stale.value, status: 'STALE', stored: true, staleAt: stale.staleAt };
        }
      }
      try {
        return await this.compute(key, factory, call, mark, lease, stale, wait);
      } finally {
        if (lease.outcome === 'acquired')
          await lease.release().catch((err) => this.hooks.onBackgroundError(key, err));
      }
    });
    return flight.finally(() => {
      wait.ended();
      if (this.overdueWaits.get(key) === wait) this.overdueWaits.delete(key);
    });
  }

  /**
   * Whether `found` answers a flight: fresh, and not the very entry whose staleness (or early
   * refresh) started it.
   */
  private replaces<T>(
    found: StoredEntry<T> | undefined,
    trigger: StoredEntry<T> | undefined,
  ): found is StoredEntry<T> {
    if (found === undefined || isStale(found, this.clock.now())) return false;
    return (
      trigger === undefined ||
      found.staleAt !== trigger.staleAt ||
      found.expiresAt !== trigger.expiresAt
    );
  }

  private async compute<T>(
    key: string,
    factory: Factory<T>,
    call: ReadThroughCall<T>,
    mark: number,
    lease: Lease,
    trigger: StoredEntry<T> | undefined,
    wait: OverdueWait,
  ): Promise<CacheLookup<T>> {
    if (lease.outcome !== 'held') {
      // A flight that just ended here, or the previous lease holder, may have stored it just
      // before this flight began or the lease freed up. (Waiters that timed out have looked.)
      // Holders write every tier, so the lease tier alone tells.
      const fresh = await this.store.getEntry<T>(key, {
        scope: lease.outcome === 'acquired' ? 'lease' : trigger ? 'shared' : 'all',
      });
      if (this.replaces(fresh, trigger))
        return { value: fresh.value, status: 'HIT', stored: true, staleAt: fresh.staleAt };
    }
    // Stamped before the factory runs: a tag invalidated while it runs covers the value.
    const tags = typeof call.tags === 'function' ? call.tags() : call.tags;
    const taggedAt = this.store.tagStamp();
    const context = new EntryContext<T>(trigger);
    const started = this.clock.now();
    let value: T;
    const t0 = performance.now();
    wait.began(t0);
    try {
      value = await this.callFactory(key, factory, context);
    } catch (err) {
      this.originCalled(key, t0, 'error');
      const cached = call.empty && !context.skipped ? errorEntry(err, call.empty) : undefined;
      if (cached !== undefined) await this.storeError(key, cached, call, taggedAt, mark, lease);
      throw err;
    } finally {
      wait.ended();
    }
    this.originCalled(key, t0, 'ok');
    const delta = Math.max(0, this.clock.now() - started);
    const entry = computedEntry(value, call, context, tags, taggedAt, delta);
    if (entry === undefined) return { value, status: 'MISS', stored: false };
    const { events } = this.hooks;
    const stored = await storeComputed(this.store, events, key, value, entry, mark, lease);
    const ttl = entry.ttl ?? this.store.defaultTtl;
    const staleAt = stored ? (ttl === 0 ? 0 : started + delta + ttl) : undefined;
    return { value, status: 'MISS', stored, staleAt };
  }

  /** Stores a "not found" error the factory threw (`cacheEmpty.errors`); failures are reported. */
  private async storeError<T>(
    key: string,
    cached: CachedError,
    call: ReadThroughCall<T>,
    taggedAt: number,
    mark: number,
    lease: Lease,
  ): Promise<void> {
    const entry = { ttl: call.empty!.ttl, grace: 0, tags: undefined, taggedAt, delta: 0 };
    await storeComputed(this.store, this.hooks.events, key, cached, entry, mark, lease).catch(
      (err: unknown) => this.hooks.onBackgroundError(key, err),
    );
  }

  /**
   * Calls `factory` with `context`, marking its synchronous part: a lookup of `key` made there is
   * re-entrant, and `cacheEntryContext()` answers `context`.
   */
  private callFactory<T>(
    key: string,
    factory: Factory<T>,
    context: EntryContext<T> = new EntryContext<T>(undefined),
  ): T | Promise<T> {
    this.calling.add(key);
    try {
      return withEntryContext(context, factory);
    } finally {
      this.calling.delete(key);
    }
  }

  /**
   * A caller of `key` while its flight runs: shares the flight's outcome, or, once a factory
   * call of the flight has run `lockTimeout`, the outcome of one more call (see the class note).
   */
  private join<T>(
    key: string,
    factory: Factory<T>,
    running: Promise<CacheLookup<T>>,
  ): Promise<CacheLookup<T>> {
    const wait = this.overdueWaits.get(key);
    if (wait === undefined) return running;
    return Promise.race([
      running,
      wait.passed().then(() => this.takeOver(key, factory, wait.lockTimeout)),
    ]);
  }

  /** One more call of `key`'s factory for the callers of an overdue one (not stored). */
  private takeOver<T>(
    key: string,
    factory: Factory<T>,
    lockTimeout: number,
  ): Promise<CacheLookup<T>> {
    return this.overdue.do(key, async () => {
      this.hooks.onOverdue?.(key, lockTimeout);
      const t0 = performance.now();
      let value: T;
      try {
        value = await this.callFactory(key, factory);
      } catch (err) {
        this.originCalled(key, t0, 'error');
        throw err;
      }
      this.originCalled(key, t0, 'ok');
      return { value, status: 'MISS', stored: false };
    });
  }

  /** A background refresh failed: reported, and told to `refresh-failed` listeners. */
  private refreshFailed(key: string, error: unknown): void {
    this.hooks.onBackgroundError(key, error);
    this.hooks.events?.emit('refresh-failed', { key, error });
  }

  /** The origin was called at `t0` (`performance.now()`) and ended with `outcome`. */
  private originCalled(key: string, t0: number, outcome: OriginOutcome): void {
    const events = this.hooks.events;
    if (events?.listened.origin)
      events.emit('origin', { key, seconds: (performance.now() - t0) / 1000, outcome });
  }
}

function same<T>(value: T): T {
  return value;
}

/** `found`, or the error it holds (a cached "not found" error) thrown. */
function unmarked<T>(found: CacheLookup<T>, call: ReadThroughCall<T>): CacheLookup<T> {
  if (isCachedError(found.value)) throw rethrown(found.value, call.empty);
  return found;
}

/**
 * A lookup from inside its own key's factory: the factory's value, stored by the outer call (what
 * it tells its context is ignored).
 */
async function reentered<T>(factory: Factory<T>): Promise<CacheLookup<T>> {
  const value = await withEntryContext(new EntryContext<T>(undefined), factory);
  return { value, status: 'MISS', stored: false };
}
