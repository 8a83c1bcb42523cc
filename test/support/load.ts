import { setTimeout as sleep } from 'node:timers/promises';
import { TieredCache, TieredStore, type TieredCacheModuleOptions } from '../../lib';
import { MODULE_ONLY_OPTIONS } from '../../lib/nest/tiered-cache.options';
import { MemcachedTier } from '../../lib/tiers/memcached/memcached.tier';

/**
 * A bounded load generator for the reliability suite (test/reliability): several "app instances"
 * (each its own TieredStore and memory tier, sharing memcached nodes, a Cassandra keyspace and a
 * namespace, as separate processes would) under concurrent readers and writers, counting what a
 * caller would see (rejections, wrong values), origin calls, and a timeline of the store's own
 * state from which recovery after a fault is measured.
 */

/** `CHAOS=1` (`npm run test:chaos`) runs the long versions of the scenarios. */
export const CHAOS = process.env.CHAOS === '1';

/** The short (`npm test`) or long (`CHAOS=1`) value of a scenario setting. */
export function plan<T>(table: { short: T; chaos: T }): T {
  return CHAOS ? table.chaos : table.short;
}

export interface InstanceOptions {
  namespace: string;
  memcached: string[];
  cassandra: { contactPoints: string[]; localDataCenter: string; keyspace: string };
  /** TTL cap of each instance's memory tier, ms: how often an instance re-reads memcached. */
  memoryTtl?: number;
  memcachedTimeout?: number;
  failoverTime?: number;
  cassandraTimeout?: number;
  /** The circuit breakers' cooldown, ms. */
  cooldownMs?: number;
}

/** One app instance: a store and its read-through service; its memcached tier, to read its state. */
export interface AppInstance {
  name: string;
  store: TieredStore;
  cache: TieredCache;
  memcached: MemcachedTier;
  /** `error` events of the store (tier errors: reported, never a caller's error). */
  tierErrors: { count: number; samples: string[] };
}

/**
 * Starts `n` instances over [memory, memcached, Cassandra], connected one after the other (the
 * first creates the schema). Timeouts are generous: the 2-core test machine also runs Cassandra's
 * JVM, memcached and other Jest workers. Pushes each instance to `into` before connecting it, so
 * that a failed start is still closed by {@link closeInstances}.
 */
export async function appInstances(
  n: number,
  o: InstanceOptions,
  into: AppInstance[] = [],
): Promise<AppInstance[]> {
  for (let i = 0; i < n; i++) {
    const memcached = new MemcachedTier(
      {
        type: 'memcached',
        servers: o.memcached,
        timeout: o.memcachedTimeout ?? 1000,
        failoverTime: o.failoverTime ?? 2000,
      },
      { name: 'memcached' },
    );
    const options: TieredCacheModuleOptions = {
      namespace: o.namespace,
      tiers: [
        { type: 'memory', ttl: o.memoryTtl ?? 1000 },
        memcached,
        { type: 'cassandra', ...o.cassandra, timeout: o.cassandraTimeout ?? 3000 },
      ],
      circuitBreaker: { cooldownMs: o.cooldownMs ?? 1000 },
      logErrors: false,
    };
    const store = new TieredStore(options, MODULE_ONLY_OPTIONS);
    const instance: AppInstance = {
      name: `app${i}`,
      store,
      cache: new TieredCache(store, options),
      memcached,
      tierErrors: { count: 0, samples: [] },
    };
    store.on('error', (err: Error) => {
      instance.tierErrors.count++;
      if (instance.tierErrors.samples.length < 5) instance.tierErrors.samples.push(err.message);
    });
    into.push(instance);
    await store.connect({ failFast: true });
  }
  return into;
}

export async function closeInstances(instances: AppInstance[]): Promise<void> {
  await Promise.all(instances.map((i) => i.store.disconnect()));
}

/** FNV-1a of `s`, hex: the check digits of the values below. */
function checksum(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16);
}

/** What the origin returns for a read-through key: a function of the key alone. */
export function originValue(key: string): { key: string; check: string } {
  return { key, check: checksum(key) };
}

/** What writers store under a written key, version `version`. */
export function writtenValue(key: string, version: number) {
  return { key, version, check: checksum(`${key}#${version}`) };
}

/**
 * `readKeys` (`r0`…) are read through `getOrSet` (and sometimes `get`); `writeKeys` (`w0`…) are
 * written with `set` and read with `get`. `readers` and `writers`: loops per instance, each making
 * one call, then pausing `thinkMs`. `ttl`: of entries and written values. The load stops by itself
 * after `maxMs` or `maxCalls`. `sampleMs`: timeline resolution. An interval of the timeline is the
 * steady state when it saw no caller error, no wrong value, no memcached node off a ring, only
 * closed circuits, and a memcached hit ratio of at least `minHitRatio` (if `minLookups` or more).
 */
export interface LoadOptions {
  instances: AppInstance[];
  readKeys?: number;
  writeKeys?: number;
  readers?: number;
  writers?: number;
  thinkMs?: number;
  originDelayMs?: number;
  ttl?: number;
  maxMs: number;
  maxCalls?: number;
  sampleMs?: number;
  minHitRatio?: number;
  minLookups?: number;
}

/**
 * Cumulative counts at one moment (`t`: ms since the load began); `hits`, `misses` of memcached
 * and `failed` (its nodes off the ring) summed over instances; `closed`: every circuit of every
 * instance is closed.
 */
export interface Sample {
  t: number;
  calls: number;
  errors: number;
  wrong: number;
  origin: number;
  hits: number;
  misses: number;
  failed: number;
  closed: boolean;
}

export class Load {
  /** Caller calls (getOrSet `lookups`, `gets`, `sets`), rejections, wrong values, origin calls. */
  readonly counts = { calls: 0, lookups: 0, gets: 0, sets: 0, errors: 0, wrong: 0, origin: 0 };
  maxLatencyMs = 0;
  readonly errorSamples: string[] = [];
  readonly wrongSamples: string[] = [];
  readonly timeline: Sample[] = [];
  /** Origin calls per read-through key. */
  readonly originPerKey = new Map<string, number>();
  private readonly o: Required<Omit<LoadOptions, 'instances'>> & { instances: AppInstance[] };
  private readonly readKeys: string[];
  private readonly writeKeys: string[];
  /** Highest version handed to a writer, per written key. */
  private readonly issued = new Map<string, number>();
  private readonly t0 = performance.now();
  private stopped = false;
  private loops: Promise<void> | undefined;
  private sampler: NodeJS.Timeout | undefined;
  private limit: NodeJS.Timeout | undefined;

  constructor(options: LoadOptions) {
    this.o = {
      readKeys: 200,
      writeKeys: 100,
      readers: 4,
      writers: 1,
      thinkMs: 1,
      originDelayMs: 5,
      ttl: 120_000,
      maxCalls: 2_000_000,
      sampleMs: 200,
      minHitRatio: 0.9,
      minLookups: 20,
      ...options,
    };
    this.readKeys = Array.from({ length: this.o.readKeys }, (_, i) => `r${i}`);
    this.writeKeys = Array.from({ length: this.o.writeKeys }, (_, i) => `w${i}`);
  }

  /** Ms since the load was created. */
  now(): number {
    return performance.now() - this.t0;
  }

  /**
   * Fills the cache: every instance asks for every read-through key at once (the cluster-wide
   * lease lets one origin call per key through), and version 1 of every written key is set.
   */
  async warm(): Promise<void> {
    const { instances } = this.o;
    for (let i = 0; i < this.readKeys.length; i += 50) {
      const batch = this.readKeys.slice(i, i + 50);
      await Promise.all(batch.flatMap((k) => instances.map((app) => this.lookup(app, k))));
    }
    for (let i = 0; i < this.writeKeys.length; i += 50) {
      await Promise.all(
        this.writeKeys
          .slice(i, i + 50)
          .map((k, j) => this.write(instances[j % instances.length], k)),
      );
    }
  }

  /** Starts the readers, writers and the timeline; they stop at `stop()`, `maxMs` or `maxCalls`. */
  start(): this {
    const { instances, readers, writers, maxMs, sampleMs } = this.o;
    this.sample();
    this.sampler = setInterval(() => this.sample(), sampleMs);
    this.limit = setTimeout(() => void this.stop(), maxMs);
    const loops = instances.flatMap((app) => [
      ...Array.from({ length: readers }, () => this.loop(() => this.read(app))),
      ...Array.from({ length: writers }, () => this.loop(() => this.write(app, this.pick('w')))),
    ]);
    this.loops = Promise.all(loops).then(() => undefined);
    return this;
  }

  /** Stops every loop, waits for calls in flight, takes a last sample. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.limit);
    clearInterval(this.sampler);
    await this.loops;
    if (this.sampler !== undefined) {
      this.sampler = undefined;
      this.sample();
    }
  }

  /** Resolves once the load has stopped (by `stop()` or by its own bounds). */
  async finished(): Promise<void> {
    while (!this.stopped) await sleep(50);
    await this.stop();
  }

  private async loop(op: () => Promise<void>): Promise<void> {
    while (!this.stopped && this.counts.calls < this.o.maxCalls) {
      await op();
      await sleep(this.o.thinkMs);
    }
    this.stopped = true;
  }

  private pick(prefix: 'r' | 'w'): string {
    const keys = prefix === 'r' ? this.readKeys : this.writeKeys;
    return keys[Math.floor(Math.random() * keys.length)];
  }

  /** One reader call: getOrSet of a read-through key (60%), get of a written (25%) or read-through key. */
  private read(app: AppInstance): Promise<void> {
    const dice = Math.random();
    if (dice < 0.6) return this.lookup(app, this.pick('r'));
    const key = this.pick(dice < 0.85 ? 'w' : 'r');
    return this.call(async () => {
      this.counts.gets++;
      const value = await app.store.get(key);
      if (value !== undefined) this.check(key, value);
    });
  }

  private lookup(app: AppInstance, key: string): Promise<void> {
    return this.call(async () => {
      this.counts.lookups++;
      const value = await app.cache.getOrSet(key, () => this.origin(key), { ttl: this.o.ttl });
      this.check(key, value);
    });
  }

  private write(app: AppInstance, key: string): Promise<void> {
    const version = (this.issued.get(key) ?? 0) + 1;
    this.issued.set(key, version);
    return this.call(async () => {
      this.counts.sets++;
      const accepted = await app.store.set(key, writtenValue(key, version), this.o.ttl);
      if (!accepted) throw new Error(`set(${key}) resolved false: no tier accepted it`);
    });
  }

  private async origin(key: string) {
    this.counts.origin++;
    this.originPerKey.set(key, (this.originPerKey.get(key) ?? 0) + 1);
    await sleep(this.o.originDelayMs);
    return originValue(key);
  }

  /** Runs one caller call: a rejection is a caller error. */
  private async call(fn: () => Promise<void>): Promise<void> {
    const t = performance.now();
    try {
      await fn();
    } catch (err) {
      this.counts.errors++;
      if (this.errorSamples.length < 5) this.errorSamples.push(String(err));
    } finally {
      this.counts.calls++;
      this.maxLatencyMs = Math.max(this.maxLatencyMs, performance.now() - t);
    }
  }

  /**
   * A value is right when it is one ever written for its key: the origin's value for a
   * read-through key; a version handed to a writer, with matching check digits, for a written key.
   */
  private check(key: string, value: unknown): void {
    const v = value as { key?: unknown; version?: unknown; check?: unknown } | null | undefined;
    const version = v?.version;
    const right = key.startsWith('r')
      ? v?.key === key && v.check === originValue(key).check
      : v?.key === key &&
        Number.isInteger(version) &&
        (version as number) >= 1 &&
        (version as number) <= (this.issued.get(key) ?? 0) &&
        v.check === writtenValue(key, version as number).check;
    if (right) return;
    this.counts.wrong++;
    if (this.wrongSamples.length < 5) this.wrongSamples.push(`${key}: ${JSON.stringify(value)}`);
  }

  private sample(): void {
    let hits = 0;
    let misses = 0;
    let failed = 0;
    let closed = true;
    for (const app of this.o.instances) {
      const stats = app.store.stats();
      const mc = stats.find((s) => s.kind === 'memcached');
      hits += mc?.hits ?? 0;
      misses += mc?.misses ?? 0;
      failed += app.memcached.failedServers.length;
      if (stats.some((s) => s.circuit !== 'closed')) closed = false;
    }
    const { calls, errors, wrong, origin } = this.counts;
    const t = this.now();
    this.timeline.push({ t, calls, errors, wrong, origin, hits, misses, failed, closed });
  }

  /** memcached hit ratio between two moments (ms since start); NaN when it saw no lookups. */
  hitRatio(from = 0, to = Infinity): number {
    const { hits, misses } = this.memcachedLookups(from, to);
    return hits / (hits + misses);
  }

  /**
   * memcached hits and misses between two moments (ms since start). Right after warming, the
   * memory tier answers everything for up to its TTL, so memcached may not have seen a lookup yet.
   */
  memcachedLookups(from = 0, to = Infinity): { hits: number; misses: number } {
    const inside = this.timeline.filter((s) => s.t >= from && s.t <= to);
    if (inside.length < 2) return { hits: 0, misses: 0 };
    const [a, b] = [inside[0], inside[inside.length - 1]];
    return { hits: b.hits - a.hits, misses: b.misses - a.misses };
  }

  /** Whether the steady state has lasted `ms` and memcached has seen at least `lookups` lookups. */
  warmedUp(ms: number, lookups = 100): boolean {
    const seen = this.memcachedLookups();
    return this.steadyFor(0) >= ms && seen.hits + seen.misses >= lookups;
  }

  /** Whether the sample interval ending at `timeline[i]` is the steady state. */
  private healthy(i: number): boolean {
    const [a, b] = [this.timeline[i - 1], this.timeline[i]];
    const lookups = b.hits - a.hits + b.misses - a.misses;
    return (
      b.errors === a.errors &&
      b.wrong === a.wrong &&
      b.failed === 0 &&
      b.closed &&
      (lookups < this.o.minLookups || (b.hits - a.hits) / lookups >= this.o.minHitRatio)
    );
  }

  /**
   * When the steady state began for good after `since` (a fault's end, ms since start): the end
   * of the last interval after `since` that was not steady, or `since` itself when none was.
   * `undefined` while the latest interval is not steady (not recovered yet).
   */
  recoveredAt(since: number): number | undefined {
    let last = since;
    let any = false;
    for (let i = 1; i < this.timeline.length; i++) {
      if (this.timeline[i].t <= since) continue;
      any = true;
      if (!this.healthy(i)) last = this.timeline[i].t;
    }
    if (!any || last === this.timeline[this.timeline.length - 1].t) return undefined;
    return last;
  }

  /** Recovery time after `since`, ms; `undefined` when not recovered. */
  recoveryMs(since: number): number | undefined {
    const at = this.recoveredAt(since);
    return at === undefined ? undefined : Math.round(at - since);
  }

  /** How long the steady state has lasted since it began after `since`; 0 when it has not. */
  steadyFor(since: number): number {
    const at = this.recoveredAt(since);
    return at === undefined ? 0 : this.timeline[this.timeline.length - 1].t - at;
  }

  /** Tier errors (`error` events) over every instance. */
  get tierErrors(): number {
    return this.o.instances.reduce((n, app) => n + app.tierErrors.count, 0);
  }

  /**
   * The figure line of a scenario, printed with `console.log`:
   * `reliability NAME: 12000 calls, 0 caller errors, 0 wrong values, 31 origin calls, recovered in 412 ms; …`
   */
  report(name: string, recovery: number | undefined | 'no fault', extra: string[] = []): string {
    const { calls, errors, wrong, origin } = this.counts;
    const recovered = typeof recovery === 'number' ? `recovered in ${recovery} ms` : recovery;
    const more = [
      `slowest call ${Math.round(this.maxLatencyMs)} ms`,
      `${this.tierErrors} tier errors`,
    ];
    const line =
      `reliability ${name}: ${calls} calls, ${errors} caller errors, ${wrong} wrong values, ` +
      `${origin} origin calls, ${recovered ?? 'not recovered'}` +
      [...more, ...extra].map((s) => `; ${s}`).join('') +
      (this.errorSamples.length ? `\n  caller errors: ${this.errorSamples.join(' | ')}` : '') +
      (this.wrongSamples.length ? `\n  wrong values: ${this.wrongSamples.join(' | ')}` : '');
    console.log(line);
    return line;
  }
}
