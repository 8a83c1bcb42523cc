import type { Counter, Gauge, Histogram } from 'prom-client';
import { loadPeer } from '../errors';
import { invalid } from '../options';
import type { CacheEventMap, LeaseEventOutcome } from '../store/cache-events';
import type { CircuitState } from '../store/circuit-breaker';
import type { TieredStore } from '../store/tiered-store';
import { metricsConfig, type MetricsOptions, type MetricsRegistryLike } from './metrics.options';

/**
 * Remote tier calls and bus deliveries: a loopback memcached answers, and Redis delivers, in a
 * fraction of a millisecond (the bus lag also holds the skew of the hosts' clocks).
 */
const FAST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Origin calls (the factory of `getOrSet`, a `@Cached` method). */
const ORIGIN_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** `circuit_state`'s values: a state's index here. */
const CIRCUIT_STATES: readonly CircuitState[] = ['closed', 'half-open', 'open'];

/** The help text of each metric, by its name without the prefix. */
const HELP = {
  reads_total: 'Reads a tier answered (hit, stale serves included) or could not (miss)',
  tier_errors_total: 'Failed or timed-out tier operations',
  tier_skipped_total: "Tier operations not sent because the tier's circuit was open",
  backfills_total: 'Entries copied into a tier after a hit farther away',
  circuit_opened_total: "Times a tier's circuit opened",
  circuit_state: "State of a tier's circuit breaker: 0 closed, 1 half-open, 2 open",
  memory_bytes: "Bytes held by the memory tier (entries' encoded size and key length)",
  memory_entries: 'Entries held by the memory tier',
  tier_call_duration_seconds:
    'Duration of operations sent to remote tiers (reads, writes, leases, counters), by result',
  origin_duration_seconds:
    'Duration of read-through origin calls (getOrSet factories, @Cached methods), by outcome',
  leases_total:
    'Read-through lease outcomes: acquired (computes), waited (another holder had it), lost, local (no shared tier holds leases)',
  stale_served_total: 'Stale values served by read-through (within grace) while a refresh runs',
  refresh_failures_total: 'Background refreshes that failed (the stale value, if any, is kept)',
  bus_up: 'Whether the invalidation bus is subscribed (1) or not (0)',
  bus_messages_total:
    'Invalidation bus messages: out ok (published), out failed (refused or unanswered), in ok (received), in invalid (not understood)',
  bus_dropped_keys_total:
    'Keys not published because more than bus.maxQueue were waiting (receivers see a gap)',
  bus_gaps_total: "Gaps in another instance's message sequence (local tiers flushed)",
  bus_pending_keys: 'Keys waiting for the publish in flight to finish',
  bus_lag_seconds:
    "Invalidation bus delivery time: when another instance's message was applied here, minus when it was sent",
} as const;

type MetricName = keyof typeof HELP;
type PromClient = typeof import('prom-client');
type Labels = Record<string, string>;
type Emit = (labels: Labels, value: number) => void;
type Combine = (a: number, b: number) => number;
/** Reads what one attached store contributes to a metric at scrape time. */
type Read = (source: Source, emit: Emit) => void;

const sum: Combine = (a, b) => a + b;

/**
 * One attached store, as its metrics read it: the store, the tallies of its events, and how many
 * {@link CacheMetrics} handles hold it (a store attached twice to one family is counted once).
 */
interface Source {
  readonly store: TieredStore;
  readonly namespace: string;
  readonly leases: Record<LeaseEventOutcome, number>;
  stale: number;
  refreshFailures: number;
  handles: number;
  /** Stop listening to the store's events. */
  stops: Array<() => void>;
}

/** A {@link Read} of one counter of each tier. */
const perTier =
  (field: 'errors' | 'skipped' | 'backfills' | 'circuitOpened'): Read =>
  (s, emit) => {
    for (const t of s.store.stats()) emit({ namespace: s.namespace, tier: t.name }, t[field]);
  };

/** A {@link Read} of the size of each tier that tells it. */
const perSizedTier =
  (field: 'bytes' | 'size'): Read =>
  (s, emit) => {
    for (const t of sizedTiers(s.store)) emit({ namespace: s.namespace, tier: t.name }, t[field]);
  };

/** A {@link Read} of one counter of the bus (none without a bus). */
const ofBus =
  (field: 'dropped' | 'gaps' | 'pending' | 'up'): Read =>
  (s, emit) => {
    const b = s.store.busStats();
    if (b !== undefined) emit({ namespace: s.namespace }, Number(b[field]));
  };

/** A {@link Read} of one tally of the store's events. */
const tally =
  (field: 'stale' | 'refreshFailures'): Read =>
  (s, emit) =>
    emit({ namespace: s.namespace }, s[field]);

const circuitStates: Read = (s, emit) => {
  for (const t of s.store.stats())
    emit({ namespace: s.namespace, tier: t.name }, CIRCUIT_STATES.indexOf(t.circuit));
};

const reads: Read = (s, emit) => {
  for (const t of s.store.stats()) {
    emit({ namespace: s.namespace, tier: t.name, result: 'hit' }, t.hits);
    emit({ namespace: s.namespace, tier: t.name, result: 'miss' }, t.misses);
  }
};

const leases: Read = (s, emit) => {
  for (const [outcome, n] of Object.entries(s.leases)) emit({ namespace: s.namespace, outcome }, n);
};

const busMessages: Read = (s, emit) => {
  const b = s.store.busStats();
  if (b === undefined) return;
  const namespace = s.namespace;
  emit({ namespace, direction: 'out', result: 'ok' }, b.published);
  emit({ namespace, direction: 'out', result: 'failed' }, b.publishFailed);
  emit({ namespace, direction: 'in', result: 'ok' }, b.received);
  emit({ namespace, direction: 'in', result: 'invalid' }, b.invalid);
};

/**
 * The metrics of one registry and prefix, shared by the stores attached to it (prom-client
 * refuses a second metric of one name): what the store counts is read from every attached
 * store at scrape time, what events tell is observed as they come.
 */
class MetricFamily {
  readonly attached = new Map<TieredStore, Source>();
  readonly tierCall: Histogram<string>;
  readonly origin: Histogram<string>;
  readonly busLag: Histogram<string>;
  private readonly all: Array<Counter<string> | Gauge<string> | Histogram<string>>;

  constructor(
    prom: PromClient,
    readonly registry: MetricsRegistryLike,
    readonly prefix: string,
  ) {
    const gather = (read: Read, combine: Combine) => {
      const series = new Map<string, [Labels, number]>();
      for (const source of this.attached.values())
        read(source, (labels, value) => {
          const id = Object.values(labels).join('\u0000');
          const seen = series.get(id);
          series.set(id, [labels, seen === undefined ? value : combine(seen[1], value)]);
        });
      return [...series.values()];
    };
    const config = (name: MetricName, labelNames: string[]) => ({
      name: prefix + name,
      help: HELP[name],
      labelNames: ['namespace', ...labelNames],
      registers: [],
    });
    // Read at scrape time: the totals of the attached stores (stores of one namespace add up).
    const counter = (name: MetricName, labelNames: string[], read: Read) =>
      new prom.Counter({
        ...config(name, labelNames),
        collect() {
          const series = gather(read, sum);
          this.reset();
          for (const [labels, value] of series) this.inc(labels, value);
        },
      });
    const gauge = (name: MetricName, labelNames: string[], read: Read, combine = sum) =>
      new prom.Gauge({
        ...config(name, labelNames),
        collect() {
          const series = gather(read, combine);
          this.reset();
          for (const [labels, value] of series) this.set(labels, value);
        },
      });
    const histogram = (name: MetricName, labelNames: string[], buckets: number[]) =>
      new prom.Histogram({ ...config(name, labelNames), buckets });

    this.tierCall = histogram('tier_call_duration_seconds', ['tier', 'op', 'result'], FAST_BUCKETS);
    this.origin = histogram('origin_duration_seconds', ['outcome'], ORIGIN_BUCKETS);
    this.busLag = histogram('bus_lag_seconds', [], FAST_BUCKETS);
    this.all = [
      counter('reads_total', ['tier', 'result'], reads),
      counter('tier_errors_total', ['tier'], perTier('errors')),
      counter('tier_skipped_total', ['tier'], perTier('skipped')),
      counter('backfills_total', ['tier'], perTier('backfills')),
      counter('circuit_opened_total', ['tier'], perTier('circuitOpened')),
      gauge('circuit_state', ['tier'], circuitStates, Math.max),
      gauge('memory_bytes', ['tier'], perSizedTier('bytes')),
      gauge('memory_entries', ['tier'], perSizedTier('size')),
      this.tierCall,
      this.origin,
      counter('leases_total', ['outcome'], leases),
      counter('stale_served_total', [], tally('stale')),
      counter('refresh_failures_total', [], tally('refreshFailures')),
      gauge('bus_up', [], ofBus('up'), Math.min),
      counter('bus_messages_total', ['direction', 'result'], busMessages),
      counter('bus_dropped_keys_total', [], ofBus('dropped')),
      counter('bus_gaps_total', [], ofBus('gaps')),
      gauge('bus_pending_keys', [], ofBus('pending')),
      this.busLag,
    ];
  }

  /**
   * Registers the metrics (again, for those the registry no longer holds: it was cleared).
   * @throws InvalidOptionError `metrics.prefix` when the registry holds another metric of a name.
   */
  register(): void {
    for (const metric of this.all) {
      const held = this.registry.getSingleMetric(nameOf(metric));
      if (held !== undefined && held !== metric)
        throw invalid(
          'metrics.prefix',
          `the registry already holds a metric named "${nameOf(metric)}" that is not this library's: choose another prefix (or registry)`,
        );
    }
    for (const metric of this.all)
      if (this.registry.getSingleMetric(nameOf(metric)) === undefined)
        this.registry.registerMetric(metric);
  }

  /** Removes the metrics from the registry (the last store detached). */
  unregister(): void {
    for (const metric of this.all)
      if (this.registry.getSingleMetric(nameOf(metric)) === metric)
        this.registry.removeSingleMetric(nameOf(metric));
  }

  /** The source of `store`, listening to its events; a store attached again shares it. */
  join(store: TieredStore): Source {
    const known = this.attached.get(store);
    if (known !== undefined) {
      known.handles++;
      return known;
    }
    const source: Source = {
      store,
      namespace: store.opts.namespace ?? 'app',
      leases: { acquired: 0, waited: 0, lost: 0, local: 0 },
      stale: 0,
      refreshFailures: 0,
      handles: 1,
      stops: [],
    };
    source.stops = listen(source, this);
    this.attached.set(store, source);
    return source;
  }

  /**
   * Lets go of one handle of `source`. The last one stops listening and drops the store's
   * series: those read at scrape time at once, the observed ones once no store of its namespace
   * is left; the last store out removes the metrics from the registry.
   */
  async leave(source: Source): Promise<void> {
    if (--source.handles > 0) return;
    for (const stop of source.stops) stop();
    this.attached.delete(source.store);
    if (this.attached.size === 0) {
      this.unregister();
      families.get(this.registry)?.delete(this.prefix);
    } else if (!this.holds(source.namespace)) {
      await this.forget(source.namespace);
    }
  }

  /** Whether a store of `namespace` is attached. */
  holds(namespace: string): boolean {
    return [...this.attached.values()].some((s) => s.namespace === namespace);
  }

  /** Removes the observed series of `namespace` (its last store detached). */
  async forget(namespace: string): Promise<void> {
    for (const h of [this.tierCall, this.origin, this.busLag]) {
      const { values } = await h.get();
      // A store of that namespace attached meanwhile: its series stay.
      if (this.holds(namespace)) return;
      const count = `${nameOf(h)}_count`;
      for (const v of values)
        if (v.labels.namespace === namespace && v.metricName === count) h.remove(v.labels);
    }
  }
}

/** A metric's name (prom-client keeps it as a property its types do not declare). */
function nameOf(metric: object): string {
  return (metric as { name: string }).name;
}

/** A tier that tells its size: its name in the chain, bytes and entries held. */
type SizedTier = { name: string; bytes: number; size: number };

/** The store's tiers that tell their size (the memory tier: see `TierStats.held`). */
function sizedTiers(store: TieredStore): SizedTier[] {
  const sized: SizedTier[] = [];
  for (const t of store.stats())
    if (t.held !== undefined)
      sized.push({ name: t.name, bytes: t.held.bytes, size: t.held.entries });
  return sized;
}

/** The metric families of each registry, by prefix. */
const families = new WeakMap<object, Map<string, MetricFamily>>();

/** Listens to the events of `source`'s store that are not on the hit path; returns the stops. */
function listen(source: Source, family: MetricFamily): Array<() => void> {
  const { events } = source.store;
  const namespace = source.namespace;
  return [
    events.on('tier-call', (e: CacheEventMap['tier-call']) =>
      family.tierCall.observe(
        { namespace, tier: e.tier, op: e.op, result: e.ok ? 'ok' : 'error' },
        e.seconds,
      ),
    ),
    events.on('origin', (e) => family.origin.observe({ namespace, outcome: e.outcome }, e.seconds)),
    events.on('lease', (e) => void source.leases[e.outcome]++),
    events.on('stale', () => void source.stale++),
    events.on('refresh-failed', () => void source.refreshFailures++),
    events.on('bus', (e) => {
      if (e.type !== 'invalidated' || e.invalidation === undefined) return;
      // The sender's `at` is wall-clock time too; hosts' clocks may disagree (never below 0).
      const lag = performance.timeOrigin + performance.now() - e.invalidation.at;
      family.busLag.observe({ namespace }, Math.max(0, lag) / 1000);
    }),
  ];
}

/**
 * The Prometheus metrics of one store (see {@link collectMetrics}); {@link detach} stops them.
 */
export class CacheMetrics {
  /** The `namespace` label of this store's series. */
  readonly namespace: string;
  private detached = false;

  private constructor(
    private readonly source: Source,
    private readonly family: MetricFamily,
  ) {
    this.namespace = source.namespace;
  }

  /** {@link collectMetrics}, which is the way to call it. @internal */
  static async attach(store: TieredStore, options: MetricsOptions = {}): Promise<CacheMetrics> {
    const config = metricsConfig(options ?? {}) ?? metricsConfig(true)!;
    const prom = await loadPromClient();
    const registry = config.registry ?? (prom.register as MetricsRegistryLike);
    const byPrefix = families.get(registry) ?? new Map<string, MetricFamily>();
    families.set(registry, byPrefix);
    const family = byPrefix.get(config.prefix) ?? new MetricFamily(prom, registry, config.prefix);
    family.register();
    byPrefix.set(config.prefix, family);
    return new CacheMetrics(family.join(store), family);
  }

  /**
   * Stops listening to the store (unless another handle of it in this registry and prefix is
   * still attached), and drops its series: those read at scrape time at once, the observed ones
   * (durations, bus lag) once no store of its namespace is attached. The last store of a
   * registry and prefix to detach removes the metrics from the registry. Idempotent.
   */
  async detach(): Promise<void> {
    if (this.detached) return;
    this.detached = true;
    await this.family.leave(this.source);
  }
}

/**
 * Exports `store`'s counters and events as Prometheus metrics in `options.registry` (default:
 * prom-client's default registry), named with `options.prefix` (default `tiered_cache_`).
 * Resolves once they are registered; `detach()` of the result stops them. prom-client is an
 * optional peer dependency, loaded here.
 *
 * The hit path costs nothing more: the store's counters (hits, misses, errors, backfills, skips,
 * circuits), the memory tier's size and the bus's counters are read when the registry is
 * scraped (prom-client `collect()`); only events that are not on the hit path are listened to
 * (timed remote tier calls, origin calls, leases, stale serves, failed refreshes, bus
 * deliveries). Every series has a `namespace` label (the store's `namespace`); the other labels
 * are bounded (tier names, operations, outcomes), never a cache key. With the default prefix:
 *
 * | metric (`tiered_cache_…`) | type | labels besides `namespace` |
 * | --- | --- | --- |
 * | `reads_total` | counter | `tier`, `result` (`hit`, `miss`) |
 * | `tier_errors_total`, `tier_skipped_total`, `backfills_total`, `circuit_opened_total` | counter | `tier` |
 * | `circuit_state` (0 closed, 1 half-open, 2 open) | gauge | `tier` |
 * | `memory_bytes`, `memory_entries` | gauge | `tier` |
 * | `tier_call_duration_seconds` | histogram | `tier`, `op`, `result` (`ok`, `error`) |
 * | `origin_duration_seconds` | histogram | `outcome` (`ok`, `error`) |
 * | `leases_total` | counter | `outcome` (`acquired`, `waited`, `lost`, `local`) |
 * | `stale_served_total`, `refresh_failures_total` | counter | |
 * | `bus_up`, `bus_pending_keys` | gauge | |
 * | `bus_messages_total` | counter | `direction` (`out`, `in`), `result` (`ok`, `failed`, `invalid`) |
 * | `bus_dropped_keys_total`, `bus_gaps_total` | counter | |
 * | `bus_lag_seconds` | histogram | |
 *
 * Several stores may share a registry: stores of one namespace add up (their state gauges report
 * the worst: the highest `circuit_state`, the lowest `bus_up`), and attaching a store of a
 * namespace already attached does not fail. One store attached twice (say by the module's
 * `metrics` option and by hand) is counted once. A metric of one of these names registered by
 * something else is an `InvalidOptionError` naming `metrics.prefix`.
 *
 * @throws TieredCacheError `E_MISSING_PEER` when prom-client is not installed.
 * @throws InvalidOptionError for options that are not {@link MetricsOptions} (path `metrics…`).
 */
export function collectMetrics(
  store: TieredStore,
  options: MetricsOptions = {},
): Promise<CacheMetrics> {
  return CacheMetrics.attach(store, options);
}

/** prom-client, loaded on first use (an optional peer dependency). */
async function loadPromClient(): Promise<PromClient> {
  const mod = await loadPeer(
    () => import('prom-client') as Promise<PromClient & { default?: PromClient }>,
    'metrics need the prom-client package: npm install prom-client (or leave the metrics option out)',
  );
  return typeof mod.Histogram === 'function' ? mod : mod.default!;
}
