import { performance } from 'node:perf_hooks';
import type { Clock } from '../clock';
import type { Tier } from '../tiers/tier.interface';
import { CircuitBreaker, type CircuitBreakerOptions } from './circuit-breaker';
import type { PayloadMode } from './local-records';
import { TierCounters, type TierStats } from './tier-stats';
import { WriteOrder } from './write-order';

/** What a guarded call resolves when the tier failed or its circuit was open. */
export const FAILED = Symbol('failed');
export type Failed = typeof FAILED;

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
  circuitBreaker: CircuitBreakerOptions | undefined;
  clock: Clock;
  /** Receives every failure (the store turns it into a `TierError` event when someone listens). */
  report: FailureReport;
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
  readonly breaker: CircuitBreaker;
  readonly counters = new TierCounters();
  private readonly order = new WriteOrder();
  /** False until `connect()` succeeded; a tier that failed to connect is connected again on use. */
  connected: boolean;
  private connecting: Promise<void> | undefined;
  private readonly report: FailureReport;

  constructor(setup: SlotSetup) {
    this.tier = setup.tier;
    this.name = setup.tier.name;
    this.cap = setup.ttlCap;
    this.mode = setup.mode;
    this.local = setup.tier.capabilities.local;
    this.byCallerKey = setup.byCallerKey;
    this.breaker = new CircuitBreaker(setup.circuitBreaker ?? {}, setup.clock);
    this.report = setup.report;
    // A local tier has nothing to connect to: its writes land synchronously from the start.
    this.connected = this.local;
  }

  /** The key this tier holds `key` under: the caller's own (see {@link byCallerKey}) or `k`. */
  keyFor(key: string, k: string): string {
    return this.byCallerKey ? String(key) : k;
  }

  /** The TTL this tier gets for `ttlMs`: capped by its cap (0 = none on either side). */
  ttlFor(ttlMs: number): number {
    const cap = this.cap;
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
   * {@link call} for a write or delete of the tier keys `at`: it starts once the earlier writes of
   * those keys on this tier have settled (see {@link WriteOrder}; a local tier's writes land
   * synchronously, in order already). Resolves what the tier answered, or {@link FAILED}.
   */
  callInOrder<T>(
    op: string,
    key: string | undefined,
    at: readonly string[],
    fn: () => Promise<T>,
  ): Promise<T | Failed> {
    if (this.local) return this.call(op, key, fn);
    return this.order.run(at, () => this.call(op, key, fn));
  }

  /** {@link callInOrder} for writes: whether the tier accepted it. */
  async write(
    op: string,
    key: string | undefined,
    at: readonly string[],
    fn: () => Promise<unknown>,
  ): Promise<boolean> {
    return (await this.callInOrder(op, key, at, fn)) !== FAILED;
  }

  /** {@link attempt} in write order (see {@link callInOrder}): counters. */
  attemptInOrder<T>(op: string, key: string, at: string, fn: () => Promise<T>): Promise<T> {
    if (this.local) return this.attempt(op, key, fn);
    return this.order.run([at], () => this.attempt(op, key, fn));
  }

  /**
   * Counts and reports a failure. `tierFault` false (e.g. bytes that do not decode) leaves the
   * circuit breaker alone: the tier itself answered.
   */
  fail(op: string, key: string | undefined, err: unknown, tierFault = true): void {
    this.counters.errors++;
    if (tierFault) this.breaker.failure();
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
    const failed = (err: unknown): Failed => {
      this.fail(op, key, err);
      if (rethrow) throw err;
      return FAILED;
    };
    if (!this.connected) {
      return this.ensureConnected().then(() => this.run(op, key, fn, rethrow), failed);
    }
    const t0 = this.local ? 0 : performance.now();
    let pending: Promise<T>;
    try {
      pending = fn();
    } catch (err) {
      pending = Promise.reject(err);
    }
    return pending.then((result) => {
      this.breaker.success();
      if (!this.local) this.counters.recordLatency(performance.now() - t0);
      return result;
    }, failed);
  }
}
