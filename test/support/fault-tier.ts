import type {
  LocalRecord,
  LocalTier,
  Tier,
  TierCapabilities,
  TierWrite,
} from '../../lib/tiers/tier.interface';

/** The asynchronous operations of {@link Tier}. */
export const ASYNC_OPERATIONS = [
  'connect',
  'get',
  'getMany',
  'set',
  'setMany',
  'delete',
  'deleteMany',
  'add',
  'deleteIf',
  'increment',
  'raise',
  'entries',
  'close',
] as const;

/** The synchronous operations of a {@link LocalTier}: they can fail, not be delayed or hang. */
export const SYNC_OPERATIONS = ['peek', 'put', 'clear'] as const;

const ALL_OPERATIONS = [...ASYNC_OPERATIONS, ...SYNC_OPERATIONS];

export type AsyncOperation = (typeof ASYNC_OPERATIONS)[number];
export type SyncOperation = (typeof SYNC_OPERATIONS)[number];
export type TierOperation = AsyncOperation | SyncOperation;

/** Which operations a control applies to: one, several, or `'*'` for all. */
export type Operations<O extends TierOperation = TierOperation> = O | readonly O[] | '*';

export interface FailOptions {
  /** What to throw; default an `Error` naming the tier and the operation. */
  error?: unknown | ((operation: TierOperation) => unknown);
  /** Fail only the next `times` calls, then behave again; default every call. */
  times?: number;
}

interface Failure {
  error: FailOptions['error'];
  remaining: number;
}

interface Hung {
  operation: AsyncOperation;
  settle: (outcome: { error?: unknown }) => void;
}

/**
 * A tier that wraps a real one and delegates every call to it, with controls to make chosen
 * operations fail (throw), be delayed or hang until released, and counts of calls per
 * operation. It keeps the wrapped tier's name, kind and capabilities (the very object), and has
 * exactly the optional methods the wrapped tier has: a wrapped {@link LocalTier} still exposes
 * `peek`/`put`/`clear` (build one with {@link withFaults} to get it typed as such).
 *
 * Faults apply at the moment of the call: a call delayed or hung, then released, goes on to the
 * wrapped tier; a failing call never reaches it. Calls are counted whatever their outcome.
 */
export class FaultTier<P = Buffer> implements Tier<P> {
  readonly name: string;
  readonly kind: string;
  /** Calls per operation, failed, delayed and hung ones included. */
  readonly calls: Record<TierOperation, number>;

  add?: (key: string, value: P, ttlMs: number) => Promise<boolean>;
  deleteIf?: (key: string, expected: P) => Promise<boolean>;
  increment?: (key: string, by: number, ttlMs: number) => Promise<number>;
  raise?: (key: string, n: number, ttlMs: number) => Promise<void>;
  /** Faults of `entries` apply when its first entry is asked for (before the wrapped tier lists). */
  entries?: (prefix: string) => AsyncIterable<[key: string, payload: P]>;

  private readonly failures = new Map<TierOperation, Failure>();
  private readonly delays = new Map<AsyncOperation, number>();
  private readonly hanging = new Set<AsyncOperation>();
  private readonly timeouts = new Map<AsyncOperation, number>();
  private readonly hung = new Set<Hung>();
  private readonly timers = new Set<{
    operation: AsyncOperation;
    timer: NodeJS.Timeout;
    done: () => void;
  }>();

  constructor(
    /** The wrapped tier. */
    readonly inner: Tier<P>,
    options: { name?: string } = {},
  ) {
    this.name = options.name ?? inner.name;
    this.kind = inner.kind;
    this.calls = Object.fromEntries(ALL_OPERATIONS.map((op) => [op, 0])) as Record<
      TierOperation,
      number
    >;
    const { add, deleteIf, increment, raise, entries } = inner;
    if (add)
      this.add = (key, value, ttlMs) => this.run('add', () => add.call(inner, key, value, ttlMs));
    if (deleteIf)
      this.deleteIf = (key, expected) =>
        this.run('deleteIf', () => deleteIf.call(inner, key, expected));
    if (increment)
      this.increment = (key, by, ttlMs) =>
        this.run('increment', () => increment.call(inner, key, by, ttlMs));
    if (raise)
      this.raise = (key, n, ttlMs) => this.run('raise', () => raise.call(inner, key, n, ttlMs));
    if (entries) this.entries = (prefix) => this.list(() => entries.call(inner, prefix));
    if (inner.capabilities.local) {
      const local = inner as unknown as LocalTier;
      Object.assign(this, {
        peek: (key: string) => this.runSync('peek', () => local.peek(key)),
        put: (key: string, record: LocalRecord, ttlMs: number) =>
          this.runSync('put', () => local.put(key, record, ttlMs)),
        clear: () => this.runSync('clear', () => local.clear()),
      });
    }
  }

  get capabilities(): TierCapabilities {
    return this.inner.capabilities;
  }

  // ------------------------------------------------------------------ controls

  /** Makes `ops` throw (reject, for asynchronous ones) instead of reaching the wrapped tier. */
  fail(ops: Operations, options: FailOptions = {}): this {
    for (const op of expand(ops, ALL_OPERATIONS))
      this.failures.set(op, { error: options.error, remaining: options.times ?? Infinity });
    return this;
  }

  /** Delays `ops` by `ms` before they reach the wrapped tier. */
  delay(ops: Operations<AsyncOperation>, ms: number): this {
    for (const op of expand(ops, ASYNC_OPERATIONS)) this.delays.set(op, ms);
    return this;
  }

  /**
   * Makes `ops` behave as a hung server behind a client timeout: each call waits `ms` (real
   * time), then rejects with an error saying `timedOut: true` (see `TierFailure`), never reaching
   * the wrapped tier. {@link heal} ends it (calls waiting then reject at once).
   */
  timeOut(ops: Operations<AsyncOperation>, ms: number): this {
    for (const op of expand(ops, ASYNC_OPERATIONS)) this.timeouts.set(op, ms);
    return this;
  }

  /** Makes calls of `ops` hang: they settle only when {@link release}d. */
  hang(ops: Operations<AsyncOperation>): this {
    for (const op of expand(ops, ASYNC_OPERATIONS)) this.hanging.add(op);
    return this;
  }

  /**
   * Stops `ops` hanging (default: all) and settles their hung calls: they go on to the wrapped
   * tier, or reject with `error` when one is given.
   */
  release(ops: Operations<AsyncOperation> = '*', error?: unknown): this {
    const released = new Set(expand(ops, ASYNC_OPERATIONS));
    for (const op of released) this.hanging.delete(op);
    for (const h of [...this.hung]) {
      if (!released.has(h.operation)) continue;
      this.hung.delete(h);
      h.settle(error === undefined ? {} : { error });
    }
    return this;
  }

  /**
   * Removes every fault of `ops` (default: all): calls behave again, hung ones go on to the
   * wrapped tier and delayed ones do so at once.
   */
  heal(ops: Operations = '*'): this {
    const healed = expand(ops, ALL_OPERATIONS);
    for (const op of healed) this.failures.delete(op);
    const asynchronous = healed.filter(isAsync);
    for (const op of asynchronous) this.delays.delete(op);
    for (const op of asynchronous) this.timeouts.delete(op);
    this.release(asynchronous);
    for (const t of [...this.timers]) {
      if (!asynchronous.includes(t.operation)) continue;
      clearTimeout(t.timer);
      t.done();
    }
    return this;
  }

  /** Calls of `ops` hanging now. */
  pending(ops: Operations<AsyncOperation> = '*'): number {
    const asked = new Set(expand(ops, ASYNC_OPERATIONS));
    return [...this.hung].filter((h) => asked.has(h.operation)).length;
  }

  /** Sets every call count back to 0. */
  resetCalls(): this {
    for (const op of Object.keys(this.calls) as TierOperation[]) this.calls[op] = 0;
    return this;
  }

  // ------------------------------------------------------------------ the Tier

  connect(): Promise<void> {
    return this.run('connect', () => this.inner.connect());
  }

  get(key: string): Promise<P | undefined> {
    return this.run('get', () => this.inner.get(key));
  }

  getMany(keys: readonly string[]): Promise<(P | undefined)[]> {
    return this.run('getMany', () => this.inner.getMany(keys));
  }

  set(key: string, value: P, ttlMs: number): Promise<void> {
    return this.run('set', () => this.inner.set(key, value, ttlMs));
  }

  setMany(entries: readonly TierWrite<P>[]): Promise<void> {
    return this.run('setMany', () => this.inner.setMany(entries));
  }

  delete(key: string): Promise<boolean> {
    return this.run('delete', () => this.inner.delete(key));
  }

  deleteMany(keys: readonly string[]): Promise<boolean> {
    return this.run('deleteMany', () => this.inner.deleteMany(keys));
  }

  close(): Promise<void> {
    return this.run('close', () => this.inner.close());
  }

  // ------------------------------------------------------------------ internals

  /** The error to throw for a call of `op`, if it is to fail (counting down `times`). */
  private failure(op: TierOperation): { error: unknown } | undefined {
    const f = this.failures.get(op);
    if (f === undefined) return undefined;
    if (--f.remaining <= 0) this.failures.delete(op);
    const error =
      typeof f.error === 'function'
        ? (f.error as (operation: TierOperation) => unknown)(op)
        : (f.error ?? new Error(`${this.name}: injected ${op} failure`));
    return { error };
  }

  private async run<T>(op: AsyncOperation, call: () => Promise<T>): Promise<T> {
    this.calls[op]++;
    const failure = this.failure(op);
    if (failure) throw failure.error;
    const ms = this.delays.get(op);
    if (ms !== undefined && ms > 0) await this.sleep(op, ms);
    const timeout = this.timeouts.get(op);
    if (timeout !== undefined) {
      await this.sleep(op, timeout);
      throw Object.assign(new Error(`${this.name}: ${op} timed out after ${timeout} ms`), {
        timedOut: true,
      });
    }
    if (this.hanging.has(op)) {
      const outcome = await new Promise<{ error?: unknown }>((settle) =>
        this.hung.add({ operation: op, settle }),
      );
      if (outcome.error !== undefined) throw outcome.error;
    }
    return call();
  }

  /** {@link run} for `entries`: the faults apply to the first step of the listing. */
  private async *list(call: () => AsyncIterable<[string, P]>): AsyncGenerator<[string, P]> {
    yield* await this.run('entries', async () => call());
  }

  private runSync<T>(op: SyncOperation, call: () => T): T {
    this.calls[op]++;
    const failure = this.failure(op);
    if (failure) throw failure.error;
    return call();
  }

  private sleep(operation: AsyncOperation, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        operation,
        timer: setTimeout(() => entry.done(), ms).unref(),
        done: () => {
          this.timers.delete(entry);
          resolve();
        },
      };
      this.timers.add(entry);
    });
  }
}

/** A {@link FaultTier} over a local tier, typed as the {@link LocalTier} it still is. */
export type LocalFaultTier = FaultTier<LocalRecord> & LocalTier;

/** Wraps `inner` in a {@link FaultTier}; a local tier stays a {@link LocalTier}. */
export function withFaults(inner: LocalTier, options?: { name?: string }): LocalFaultTier;
export function withFaults<P>(inner: Tier<P>, options?: { name?: string }): FaultTier<P>;
export function withFaults<P>(inner: Tier<P>, options?: { name?: string }): FaultTier<P> {
  return new FaultTier(inner, options);
}

function isAsync(op: TierOperation): op is AsyncOperation {
  return (ASYNC_OPERATIONS as readonly string[]).includes(op);
}

function expand<O extends TierOperation>(ops: Operations<O>, all: readonly O[]): O[] {
  if (ops === '*') return [...all];
  return typeof ops === 'string' ? [ops as O] : [...(ops as readonly O[])];
}
