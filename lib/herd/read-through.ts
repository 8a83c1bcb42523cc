import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Clock } from '../clock';
import type { StoredEntry, TieredStore } from '../store/tiered-store';
import { shouldRefreshEarly } from './early-refresh';
import type { ResolvedHerdOptions } from './herd.options';
import { SingleFlight } from './single-flight';

/** What a read-through call answered with. */
export type CacheStatus =
  /** Read from a tier (possibly after waiting for another caller or process to store it). */
  | 'HIT'
  /** Computed by this call, or by the in-process call it joined. */
  | 'MISS'
  /** Past its TTL but within its grace period; a refresh is under way or has failed. */
  | 'STALE';

/** What a read-through call found: the value and where it came from. */
export interface CacheLookup<T> {
  value: T;
  status: CacheStatus;
  /** Whether the value is (now) in the cache: false when `condition` refused a computed value. */
  stored: boolean;
}

/** One read-through call's settings. */
export interface ReadThroughCall<T> extends ResolvedHerdOptions {
  /** Logical TTL in ms; `undefined` = the store's default. */
  ttl: number | undefined;
  /** Store the computed value only when this returns true. */
  condition: ((value: T) => boolean) | undefined;
}

/** Rejection of a caller that waited longer than `hardTimeout` without a stale value to fall back on. */
export class CacheTimeoutError extends Error {
  override readonly name = 'CacheTimeoutError';
  constructor(
    readonly key: string,
    readonly timeoutMs: number,
  ) {
    super(
      `getOrSet(${JSON.stringify(key)}): no value within hardTimeout ${timeoutMs} ms (the factory goes on and stores its result)`,
    );
  }
}

export interface ReadThroughHooks {
  clock: Clock;
  /** Called for every failure nobody awaits: background refreshes, lease releases. */
  onBackgroundError(key: string, error: unknown): void;
  /** Source of XFetch's randomness. Default `Math.random`. */
  random?: () => number;
}

/** A lease this process asked for: its token (naming the holder) and what happened. */
interface LeaseTicket {
  token: Buffer;
  outcome: 'acquired' | 'held' | 'local';
  /** `performance.now()` when it was acquired. */
  at: number;
}

/** Polling a key another process is computing: first pause, growth, and longest pause (ms). */
const POLL_FIRST_MS = 5;
const POLL_GROWTH = 1.5;
const POLL_MAX_MS = 100;
/**
 * memcached and Cassandra count TTLs in whole seconds (rounded up here): an item may go up to a
 * second before its TTL. A lease lives `lockTimeout` (at least 1 s), so at least this much less.
 */
const TTL_RESOLUTION_MS = 1000;

/**
 * Read-through with thundering-herd protection, the engine of `TieredCache.getOrSet` and
 * `@Cached()`:
 *
 * - one factory call per key per process (single flight, re-checking the cache inside it), and
 *   one read of the remote tiers for concurrent callers that miss the memory tier (they share
 *   the decoded value, as callers joining one factory call share its result);
 * - one per key across processes: a lease on the shared tiers (see `TieredStore.acquireLease`);
 *   other processes poll for the value with backoff, up to `lockTimeout`, then compute
 *   themselves;
 * - stale-while-revalidate within `grace`, early refresh (XFetch), fail-safe on factory errors,
 *   soft and hard timeouts;
 * - a delete made while a refresh is in flight wins: the refresh's value is not written back.
 */
export class ReadThrough {
  /** Refreshes (re-check, lease, compute, store), one per key. */
  private readonly flights = new SingleFlight();
  /** Reads past the memory tier, one per key. */
  private readonly reads = new SingleFlight();
  private readonly holder = `${hostname()}:${process.pid}`;
  private readonly clock: Clock;
  private readonly random: () => number;

  constructor(
    private readonly store: TieredStore,
    private readonly hooks: ReadThroughHooks,
  ) {
    this.clock = hooks.clock;
    this.random = hooks.random ?? Math.random;
  }

  /** Keys with a factory call (or a wait for another process) in flight in this process. */
  get inFlight(): number {
    return this.flights.size;
  }

  async lookup<T>(
    key: string,
    factory: () => T | Promise<T>,
    call: ReadThroughCall<T>,
  ): Promise<CacheLookup<T>> {
    if (this.flights.holds(key)) {
      // Called from inside this key's own flight (a cached handler calling a cached method under
      // the same key): the outer call stores the key; waiting here would wait for itself.
      return { value: await factory(), status: 'MISS', stored: false };
    }
    // The memory tier answers synchronously; past it, concurrent callers share one read of the
    // remote tiers (a burst on a cold key costs one lookup per tier, not one per caller).
    const entry =
      this.store.peekEntry<T>(key) ?? (await this.reads.do(key, () => this.store.getEntry<T>(key)));
    if (entry !== undefined) {
      const now = this.clock.now();
      if (!isStale(entry, now)) {
        if (call.beta > 0 && shouldRefreshEarly(entry, now, call.beta, this.random))
          void this.refresh(key, factory, call, entry).catch((err) =>
            this.hooks.onBackgroundError(key, err),
          );
        return { value: entry.value, status: 'HIT', stored: true };
      }
      return this.serveStale(key, factory, call, entry);
    }
    const refresh = this.refresh(key, factory, call, undefined);
    return call.hardTimeout > 0 ? withHardTimeout(refresh, key, call.hardTimeout) : refresh;
  }

  /** A stale entry: answered at once (or after `timeout`) while one refresh runs. */
  private serveStale<T>(
    key: string,
    factory: () => T | Promise<T>,
    call: ReadThroughCall<T>,
    entry: StoredEntry<T>,
  ): Promise<CacheLookup<T>> {
    const stale: CacheLookup<T> = { value: entry.value, status: 'STALE', stored: true };
    const refresh = this.refresh(key, factory, call, entry);
    // Fail-safe: a failed refresh leaves the stale value in place and is reported once.
    const settled = refresh.catch((err: unknown) => {
      this.hooks.onBackgroundError(key, err);
      return stale;
    });
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
    factory: () => T | Promise<T>,
    call: ReadThroughCall<T>,
    stale: StoredEntry<T> | undefined,
  ): Promise<CacheLookup<T>> {
    return this.flights.do(key, async (): Promise<CacheLookup<T>> => {
      const mark = this.store.mutationMark();
      const ticket = await this.lease(key, call);
      if (ticket.outcome === 'held') {
        const waited = await this.waitForOther(key, call, ticket, stale);
        if (waited !== undefined) return { value: waited.value, status: 'HIT', stored: true };
        if (stale !== undefined && ticket.outcome === 'held') {
          // Still held by a live holder: keep serving stale, leave the refresh to it.
          return { value: stale.value, status: 'STALE', stored: true };
        }
      }
      try {
        return await this.compute(key, factory, call, mark, ticket, stale);
      } finally {
        if (ticket.outcome === 'acquired')
          await this.store
            .releaseLease(key, ticket.token)
            .catch((err) => this.hooks.onBackgroundError(key, err));
      }
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

  private async lease(key: string, call: ResolvedHerdOptions): Promise<LeaseTicket> {
    const ticket: LeaseTicket = {
      token: Buffer.from(`${this.holder}:${randomUUID()}`),
      outcome: 'held',
      at: 0,
    };
    await this.tryLease(key, call, ticket);
    return ticket;
  }

  /** Asks for the lease with `ticket`'s token; records the outcome and when it was asked. */
  private async tryLease(
    key: string,
    call: ResolvedHerdOptions,
    ticket: LeaseTicket,
  ): Promise<void> {
    // Timed from before the request: the lease may have been created any time after this.
    const at = performance.now();
    ticket.outcome = await this.store.acquireLease(key, ticket.token, leaseTtl(call));
    ticket.at = at;
  }

  /**
   * Another process holds the lease: poll the shared tiers with backoff until its value appears
   * (returned), the lease frees up (then `ticket` becomes ours and this resolves undefined), or
   * `lockTimeout` passes (undefined, `ticket` still `held`).
   */
  private async waitForOther<T>(
    key: string,
    call: ReadThroughCall<T>,
    ticket: LeaseTicket,
    trigger: StoredEntry<T> | undefined,
  ): Promise<StoredEntry<T> | undefined> {
    const deadline = performance.now() + call.lockTimeout;
    let pause = POLL_FIRST_MS;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) return undefined;
      await sleep(Math.min(pause, left));
      pause = Math.min(pause * POLL_GROWTH, POLL_MAX_MS);
      const entry = await this.store.getEntry<T>(key, { scope: 'shared' });
      if (this.replaces(entry, trigger)) return entry;
      // A holder that crashed: its lease runs out and one waiter takes it over.
      await this.tryLease(key, call, ticket);
      if (ticket.outcome !== 'held') return undefined;
    }
  }

  private async compute<T>(
    key: string,
    factory: () => T | Promise<T>,
    call: ReadThroughCall<T>,
    mark: number,
    ticket: LeaseTicket,
    trigger: StoredEntry<T> | undefined,
  ): Promise<CacheLookup<T>> {
    if (ticket.outcome !== 'held') {
      // A flight that just ended here, or the previous lease holder, may have stored it just
      // before this flight began or the lease freed up. (Waiters that timed out have looked.)
      // Holders write every tier, so the lease tier alone tells.
      const fresh = await this.store.getEntry<T>(key, {
        scope: ticket.outcome === 'acquired' ? 'lease' : trigger ? 'shared' : 'all',
      });
      if (this.replaces(fresh, trigger)) return { value: fresh.value, status: 'HIT', stored: true };
    }
    const started = this.clock.now();
    const value = await factory();
    const delta = Math.max(0, this.clock.now() - started);
    let stored = value !== undefined && (call.condition?.(value) ?? true);
    if (stored) stored = await this.write(key, value, call, delta, mark, ticket);
    return { value, status: 'MISS', stored };
  }

  /**
   * Stores a computed value unless the key was deleted while it was computed: through this
   * store (its mutation mark), or anywhere (the delete removed our lease). Checked before the
   * write and again after it; a delete that lands in between is undone.
   */
  private async write<T>(
    key: string,
    value: T,
    call: ReadThroughCall<T>,
    delta: number,
    mark: number,
    ticket: LeaseTicket,
  ): Promise<boolean> {
    if (ticket.outcome === 'acquired' && (await this.leaseLost(key, call, ticket))) return false;
    const written = await this.store.setEntry(key, value, {
      ttl: call.ttl,
      grace: call.grace,
      delta,
      unchangedSince: mark,
    });
    if (written && ticket.outcome === 'acquired' && (await this.leaseLost(key, call, ticket))) {
      await this.store.delete(key);
      return false;
    }
    return written;
  }

  /**
   * Whether our lease was taken from us by a delete. A lease lives at least `lockTimeout` less
   * the tiers' one-second TTL resolution, so one missing before that was invalidated; after it,
   * it may just have run out, and the value is written as computed. A tier that cannot answer
   * does not stop the write.
   */
  private async leaseLost(
    key: string,
    call: ResolvedHerdOptions,
    ticket: LeaseTicket,
  ): Promise<boolean> {
    if (performance.now() - ticket.at >= leaseTtl(call) - TTL_RESOLUTION_MS) return false;
    const holder = await this.store.leaseHolder(key);
    return holder !== null && !(holder !== undefined && holder.equals(ticket.token));
  }
}

/** A lease lives `lockTimeout`, and never less than the tiers' resolution (0 would mean forever). */
function leaseTtl(call: ResolvedHerdOptions): number {
  return Math.max(call.lockTimeout, TTL_RESOLUTION_MS);
}

function isStale(entry: StoredEntry<unknown>, now: number): boolean {
  return entry.staleAt !== 0 && entry.staleAt <= now;
}

function withHardTimeout<T>(work: Promise<T>, key: string, ms: number): Promise<T> {
  const ac = new AbortController();
  return Promise.race([
    work.finally(() => ac.abort()),
    sleep(ms, undefined, { signal: ac.signal }).then(
      () => Promise.reject(new CacheTimeoutError(key, ms)),
      () => new Promise<never>(() => undefined),
    ),
  ]);
}
