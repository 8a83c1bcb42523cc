import { performance } from 'node:perf_hooks';
import type { Clock } from '../clock';
import { failureOf } from '../errors';
import type { Tier } from '../tiers/tier.interface';
import type { CacheEvents } from './cache-events';
import { CircuitBreaker, type CircuitBreakerOptions } from './circuit-breaker';
import type { PayloadMode } from './local-records';
import { held, TierCounters, type TierStats } from './tier-stats';
import { TOMBSTONE, TOMBSTONE_TTL_MS } from './tombstone';
import { MissedWrites } from './missed-writes';
import { WriteOrder } from './write-order';

/** What a guarded call resolves when the tier failed or its circuit was open. */
export const FAILED = Symbol('failed');
export type Failed = typeof FAILED;

/**
 * What became of one value sent to a tier: `stored`; `failed` (an error, or an open circuit);
 * `tooLarge`: larger than the tier stores (its `maxValueBytes`, or the tier refused it), so the
 * key was deleted there instead.
 */
export type WriteOutcome = 'stored' | 'failed' | 'tooLarge';

/** Missed keys deleted per replay (the next answer of the tier starts the next batch). */
const REPLAY_BATCH = 1000;

/** One value for {@link TierSlot.writeValues}: tier key, encoded size, payload, capped TTL. */
export interface ValueWrite {
  at: string;
  bytes: number;
  value: unknown;
  ttlMs: number;
}

/** Where a slot sends its failures: tier name, operation, key, what was thrown. */
export type FailureReport = (
  tier: string,
  op: string,
  key: string | undefined,
  error: unknown,
) => void;

/** Everything a slot is built from. */
export interface SlotSetup {
  tier: Tier<unknown>;
  /** TTL cap in ms, 0 = none. */
  ttlCap: number;
  mode: PayloadMode;
  /** Keyed by caller keys instead of final ones (see {@link TierSlot.byCallerKey}). */
  byCallerKey: boolean;
  /** A shared tier of this host only (memcached `local: true`), see {@link TierSlot.perHost}. */
  perHost: boolean;
  circuitBreaker: CircuitBreakerOptions | undefined;
  clock: Clock;
  /** Receives every failure (the store turns it into a `TierError` event when someone listens). */
  report: FailureReport;
  /** The store's events (hits, misses, timed calls, circuit changes). */
  events: CacheEvents;
}

/**
 * One tier in the chain, guarded: a circuit breaker, counters and latency, connect-on-use and
 * error reports. Every tier operation of the store goes through {@link call} (failures become
 * {@link FAILED}) or {@link attempt} (failures are counted and rethrown).
 */
export class TierSlot {
  readonly tier: Tier<unknown>;
  readonly name: string;
  /** TTL cap in ms, 0 = none. */
  readonly cap: number;
  /** What the tier holds: encoded bytes, or local records (see {@link PayloadMode}). */
  readonly mode: PayloadMode;
  /** Whether the tier is process-local (its reads are not timed). */
  readonly local: boolean;
  /**
   * Keyed by the caller's key instead of the final one: the local tier of a store without a
   * `keyFn`. A private map needs no namespace, and the store empties it whenever the generation
   * changes, so the caller's key names an entry exactly; a hit then skips building the key.
   */
  readonly byCallerKey: boolean;
  /**
   * A shared tier that serves this host only (a memcached on localhost marked `local: true`):
   * like the local tier, it is kept coherent by the invalidation bus and holds no lease, counter
   * or generation.
   */
  readonly perHost: boolean;
  /**
   * The TTL cap while the invalidation bus is down (0 = none): the lower of {@link cap} and the
   * store's `bus.degradedTtl`, on the tiers the bus keeps coherent.
   */
  degradedCap = 0;
  /**
   * Deletes leave a tombstone here, and backfills `add` (see `tombstone.ts`): a shared tier with
   * atomic `add` in front of a farther shared one, that does not hold the counters. Set by the
   * chain.
   */
  tombstones = false;
  /** Until then (clock ms) nothing this tier holds is served: a flush of a per-host tier. */
  readonly breaker: CircuitBreaker;
  /** The largest encoded entry the tier stores (`capabilities.maxValueBytes`; none: Infinity). */
  readonly maxValueBytes: number;
  readonly counters = new TierCounters();
  private readonly order = new WriteOrder();
  /** The keys whose last write or delete this tier missed (see {@link MissedWrites}). */
  private readonly missed: MissedWrites;
  private replaying = false;
  /** False until `connect()` succeeded; a tier that failed to connect is connected again on use. */
  connected: boolean;
  private connecting: Promise<void> | undefined;
  private readonly report: FailureReport;
  private readonly events: CacheEvents;

  constructor(setup: SlotSetup) {
    this.tier = setup.tier;
    this.name = setup.tier.name;
    this.cap = setup.ttlCap;
    this.mode = setup.mode;
    this.local = setup.tier.capabilities.local;
    this.byCallerKey = setup.byCallerKey;
    this.perHost = setup.perHost;
    this.events = setup.events;
    this.missed = new MissedWrites(setup.clock, this.cap);
    this.breaker = new CircuitBreaker(setup.circuitBreaker ?? {}, setup.clock, (state) =>
      this.events.emit('circuit', { tier: this.name, state }),
    );
    this.report = setup.report;
    this.maxValueBytes = setup.tier.capabilities.maxValueBytes ?? Infinity;
    // A local tier has nothing to connect to: its writes land synchronously from the start.
    this.connected = this.local;
  }

  /** The key this tier holds `key` under: the caller's own (see {@link byCallerKey}) or `k`. */
  keyFor(key: string, k: string): string {
    return this.byCallerKey ? String(key) : k;
  }

  /** The TTL this tier gets for `ttlMs`: capped by its cap (0 = none on either side). */
  ttlFor(ttlMs: number): number {
    const cap = this.degradedCap > 0 ? this.degradedCap : this.cap;
    if (cap === 0) return ttlMs;
    if (ttlMs === 0) return cap;
    return Math.min(ttlMs, cap);
  }

  /** Connects the tier, once at a time; a failed connect is tried again by the next operation. */
  ensureConnected(): Promise<void> {
    this.connecting ??= this.tier
      .connect()
      .then(() => void (this.connected = true))
      .finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /** Counts a read this tier answered (and tells `hit` listeners). */
  hit(): void {
    this.counters.hits++;
    if (this.events.listened.hit) this.events.emit('hit', { tier: this.name });
  }

  /** Counts a read this tier could not answer (and tells `miss` listeners). */
  miss(): void {
    this.counters.misses++;
    if (this.events.listened.miss) this.events.emit('miss', { tier: this.name });
  }

  /** Counts entries copied here after a hit farther away (and tells `backfill` listeners). */
  backfilled(entries: number): void {
    this.counters.backfills += entries;
    if (this.events.listened.backfill) this.events.emit('backfill', { tier: this.name, entries });
  }

  /** Runs one operation behind the circuit breaker; failures become {@link FAILED} plus a report. */
  call<T>(op: string, key: string | undefined, fn: () => Promise<T>): Promise<T | Failed> {
    if (!this.breaker.allow()) {
      this.counters.skipped++;
      return Promise.resolve(FAILED);
    }
    return this.run(op, key, fn, false);
  }

  /** Runs one operation, around the circuit breaker; failures are counted and rethrown. */
  attempt<T>(op: string, key: string | undefined, fn: () => Promise<T>): Promise<T> {
    return this.run(op, key, fn, true) as Promise<T>;
  }

  /**
   * Runs `body`, a write or delete of the tier keys `at`, once the earlier writes of those keys on
   * this tier have settled (see {@link WriteOrder}; a local tier's writes land synchronously, in
   * order already).
   */
  private inOrder<T>(at: readonly string[], body: () => Promise<T>): Promise<T> {
    return this.local ? body() : this.order.run(at, body);
  }

  /**
   * {@link call} for a write of the tier keys `at`, in write order (see {@link inOrder}),
   * recording whether it landed (see {@link missed}): whether the tier accepted it.
   */
  async write(
    op: string,
    key: string | undefined,
    at: readonly string[],
    fn: () => Promise<unknown>,
  ): Promise<boolean> {
    const body = async () => {
      const ok = (await this.call(op, key, fn)) !== FAILED;
      this.landed(at, ok);
      return ok;
    };
    return this.inOrder(at, body);
  }

  /**
   * A backfill of the tier keys `at` (a copy of what a farther tier holds) in write order: like
   * {@link write}, but one that fails leaves nothing missed (the tier held no newer value), and
   * one that lands makes the keys trusted again (see {@link missed}).
   */
  backfill(at: readonly string[], fn: () => Promise<boolean[] | void>): Promise<unknown> {
    const body = async () => {
      const r = await this.call('backfill', at.length === 1 ? at[0] : undefined, fn);
      // An `add` the tier refused left what it held (a newer value, a tombstone, or an older
      // value it missed the deletion of): only what landed is trusted again.
      if (r !== FAILED) this.landed(r ? at.filter((_, i) => r[i]) : at, true);
      return r;
    };
    return this.inOrder(at, body);
  }

  /**
   * Deletes the tier keys `at` in write order (see {@link inOrder}), recording whether it
   * landed (see {@link missed}). Resolves what the tier answered, or {@link FAILED}.
   */
  remove(op: string, key: string | undefined, at: readonly string[]): Promise<boolean | Failed> {
    const body = async () => {
      const deleted = await this.call(op, key, () => this.erase(at));
      this.landed(at, deleted !== FAILED);
      return deleted;
    };
    return this.inOrder(at, body);
  }

  /**
   * Deletes the tier keys `at` on the tier; with {@link tombstones}, by writing tombstones over
   * them (see `tombstone.ts`), then resolves false: a tombstone does not tell whether something
   * was there.
   */
  private async erase(at: readonly string[]): Promise<boolean> {
    const tier = this.tier;
    if (!this.tombstones) return at.length === 1 ? tier.delete(at[0]) : tier.deleteMany(at);
    const ttlMs = this.ttlFor(TOMBSTONE_TTL_MS);
    if (at.length === 1) await tier.set(at[0], TOMBSTONE, ttlMs);
    else await tier.setMany(at.map((k) => ({ key: k, value: TOMBSTONE, ttlMs })));
    return false;
  }

  /** Whether this tier missed the last write or delete of tier key `at`: not to be served. */
  missedWrite(at: string): boolean {
    return this.missed.has(at);
  }

  /** Serves nothing this tier holds for its TTL cap (see {@link MissedWrites.distrust}). */
  distrust(): void {
    this.missed.distrust();
  }

  /** Records whether a write or delete of the tier keys `at` landed here. */
  private landed(at: readonly string[], ok: boolean): void {
    if (!this.local) this.missed.landed(at, ok);
  }

  /**
   * Deletes, on this tier, the keys whose writes it missed, in write order (a write of one of them
   * made since runs after it; one that landed meanwhile took the key off the list), then forgets
   * them. Started by the tier's next answer; at most one at a time.
   */
  private replayMissed(): void {
    if (this.replaying) return;
    this.replaying = true;
    const keys = this.missed.first(REPLAY_BATCH);
    void this.order
      .run(keys, async () => {
        const still = keys.filter((k) => this.missed.includes(k));
        if (still.length === 0) return;
        const done = await this.call('replay delete', undefined, () => this.erase(still));
        if (done !== FAILED) this.missed.landed(still, true);
      })
      .finally(() => (this.replaying = false));
  }

  /**
   * Writes values in write order (see {@link inOrder}), one outcome per value. A value larger
   * than {@link maxValueBytes} is never sent: its key is deleted on this tier instead, so an older
   * value is not served after this newer write, and it counts as skipped. So is one the tier
   * refuses for its size (an error saying `tooLarge`); when it refuses a batch, each value of it
   * is tried on its own, to tell which.
   */
  writeValues(
    op: string,
    key: string | undefined,
    writes: readonly ValueWrite[],
  ): Promise<WriteOutcome[]> {
    return this.inOrder(
      writes.map((w) => w.at),
      async () => {
        const outcomes = await this.sendValues(op, key, writes, true);
        // A value refused for its size had its key deleted here instead: nothing older is left.
        writes.forEach((w, i) => this.landed([w.at], outcomes[i] !== 'failed'));
        return outcomes;
      },
    );
  }

  private async sendValues(
    op: string,
    key: string | undefined,
    writes: readonly ValueWrite[],
    batch: boolean,
  ): Promise<WriteOutcome[]> {
    const fit = writes.filter((w) => w.bytes <= this.maxValueBytes);
    const over = writes.filter((w) => w.bytes > this.maxValueBytes);
    const outcomes = new Map<ValueWrite, WriteOutcome>();
    const tier = this.tier;
    if (over.length > 0) {
      this.counters.skipped += over.length;
      for (const w of over) outcomes.set(w, 'tooLarge');
      await this.call(op, key, () => this.erase(over.map((w) => w.at)));
    }
    if (fit.length > 0) {
      let outcome: WriteOutcome = 'stored';
      let refused = false;
      if (!this.breaker.allow()) {
        this.counters.skipped++;
        outcome = 'failed';
      } else {
        await this.run(
          op,
          key,
          () =>
            fit.length === 1
              ? tier.set(fit[0].at, fit[0].value, fit[0].ttlMs)
              : tier.setMany(fit.map((w) => ({ key: w.at, value: w.value, ttlMs: w.ttlMs }))),
          true,
        ).catch((err: unknown) => {
          outcome = 'failed';
          refused = failureOf(err).tooLarge;
        });
      }
      if (refused && fit.length > 1 && batch) {
        // Which of them? Each on its own (the refused ones are deleted there).
        for (const w of fit) outcomes.set(w, (await this.sendValues(op, key, [w], false))[0]);
      } else if (refused) {
        for (const w of fit) outcomes.set(w, 'tooLarge');
        await this.call(op, key, () => this.erase(fit.map((w) => w.at)));
      } else {
        for (const w of fit) outcomes.set(w, outcome);
      }
    }
    return writes.map((w) => outcomes.get(w)!);
  }

  /** {@link attempt} in write order (see {@link inOrder}): counters. */
  attemptInOrder<T>(op: string, key: string, at: string, fn: () => Promise<T>): Promise<T> {
    return this.inOrder([at], () => this.attempt(op, key, fn));
  }

  /**
   * Counts and reports a failure. `tierFault` false (e.g. bytes that do not decode) leaves the
   * circuit breaker alone: the tier itself answered. So does an error saying `partial` (one
   * server of several failed), or `tooLarge` (a refused value: counted as a skip, not reported);
   * one saying `timedOut` counts as a timeout (see `TierFailure`).
   */
  fail(op: string, key: string | undefined, err: unknown, tierFault = true): void {
    const failure = failureOf(err);
    if (failure.tooLarge) {
      this.counters.skipped++;
      if (tierFault) this.breaker.answered();
      return;
    }
    this.counters.errors++;
    if (!tierFault) return this.report(this.name, op, key, err);
    if (failure.partial) this.breaker.answered();
    else this.breaker.failure(failure.timedOut);
    this.report(this.name, op, key, err);
  }

  /** This slot's counters, as `TieredStore.stats()` lists them. */
  stats(): TierStats {
    const c = this.counters;
    return {
      name: this.name,
      kind: this.tier.kind,
      hits: c.hits,
      misses: c.misses,
      errors: c.errors,
      backfills: c.backfills,
      skipped: c.skipped,
      circuitOpened: this.breaker.opened,
      circuit: this.breaker.state,
      latency: c.latency(),
      ...held(this.tier),
    };
  }

  /**
   * The body of {@link call} and {@link attempt}: one `then` on the tier's promise (no `async`
   * frame, no extra `catch`), as it sits on every remote read.
   */
  private run<T>(
    op: string,
    key: string | undefined,
    fn: () => Promise<T>,
    rethrow: boolean,
  ): Promise<T | Failed> {
    let t0 = 0;
    const failed = (err: unknown): Failed => {
      if (t0 !== 0) this.timed(op, t0, false);
      this.fail(op, key, err);
      if (rethrow) throw err;
      return FAILED;
    };
    if (!this.connected) {
      return this.ensureConnected().then(() => this.run(op, key, fn, rethrow), failed);
    }
    if (!this.local) t0 = performance.now();
    let pending: Promise<T>;
    try {
      pending = fn();
    } catch (err) {
      pending = Promise.reject(err);
    }
    return pending.then((result) => {
      this.breaker.success();
      if (!this.local) {
        this.timed(op, t0, true);
        if (this.missed.size > 0) this.replayMissed();
      }
      return result;
    }, failed);
  }

  /** Records a remote call begun at `t0` (`performance.now()`). */
  private timed(op: string, t0: number, ok: boolean): void {
    const ms = performance.now() - t0;
    if (ok) this.counters.recordLatency(ms);
    if (this.events.listened['tier-call'])
      this.events.emit('tier-call', { tier: this.name, op, seconds: ms / 1000, ok });
  }
}
