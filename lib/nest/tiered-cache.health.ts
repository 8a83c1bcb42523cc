import { randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
// Types only: erased from the output, so that the library loads without @nestjs/terminus (an
// optional peer dependency). The package itself is loaded by the first `isHealthy()`.
import type { HealthIndicatorService } from '@nestjs/terminus';
import { waitAtMost } from '../clock';
import { loadPeer, messageOf, type TierError } from '../errors';
import {
  at,
  boolean,
  describeValue,
  invalid,
  nearestName,
  onlyKnownKeys,
  optionNames,
  optionsObject,
  positiveMilliseconds,
} from '../options';
import type { CircuitState } from '../store/circuit-breaker';
import type { TierStats } from '../store/tier-stats';
import type { TieredStore } from '../store/tiered-store';
import { TieredCache } from './tiered-cache.service';

/**
 * Options of {@link TieredCacheHealthIndicator.isHealthy} and {@link TieredCacheHealthIndicator.check}.
 *
 * The cache degrades rather than fails: a tier that is down is skipped (its reads are misses,
 * the origin takes the load), so by default the result is `down` only when no tier can answer,
 * and `degraded` (HTTP 200 with Terminus 12) while some tier or the bus is down.
 */
export interface TieredCacheHealthOptions {
  /**
   * The tiers the app cannot be served without; the result is `down` when they are not up:
   * - `'any'`: at least one tier must be up (a chain with a memory tier is never `down`);
   * - `'all'`: every tier must be up;
   * - names: each of these must be up; a name is a tier's (`memcached`, `cassandra[1]`, a custom
   *   tier's `name`) or a kind (`'memcached'`: every memcached tier). `[]` requires none.
   *
   * A name that is neither throws an `InvalidOptionError`.
   * @default 'any'
   */
  require?: 'any' | 'all' | readonly string[];
  /**
   * `true`: the invalidation bus being down makes the result `down` (the store must have a
   * `bus`). `false`: it only makes it `degraded` (local tiers then keep entries at most
   * `bus.degradedTtl`).
   * @default false
   */
  requireBus?: boolean;
  /**
   * `true`: each check also reads a key nobody writes through the chain (one miss per tier, which
   * the tiers' `misses` and the `miss` events count), so that a tier is seen down even while the
   * app sends it nothing, and a tier whose circuit has waited out its cooldown gets the request
   * that closes it again. Concurrent checks share one read. `false`: the circuits alone (no I/O);
   * a half-open circuit then counts as up, since the next request goes to the tier.
   * @default true
   */
  probe?: boolean;
  /**
   * How long a check waits for its probe read, ms (> 0). A slow probe fails nothing by itself:
   * past this, the check answers with what the circuits and the failures seen so far say
   * (`probe: 'pending'`) while the read goes on, each tier bounded by its own `timeout`; a tier
   * that times out has its circuit opened, so the next check sees it down. Keep it below the
   * health check's own deadline (Kubernetes' default: 1 s).
   * @default 500
   */
  timeoutMs?: number;
}

const HEALTH_OPTIONS = optionNames<TieredCacheHealthOptions>({
  require: true,
  requireBus: true,
  probe: true,
  timeoutMs: true,
});

/** How one tier stands in a check. */
export interface TierHealth {
  /** `down`: its circuit is open (the store skips it), or the probe read failed there. */
  status: 'up' | 'down';
  /** The tier's `kind`: `memory`, `memcached`, `cassandra` or a custom tier's own. */
  kind: string;
  /** Its circuit breaker: `half-open` means its cooldown is over and the next call tries it. */
  circuit: CircuitState;
  /** Why it is down. */
  error?: string;
}

/** What a check found (the details of the Terminus result, with its `status`). */
export interface TieredCacheHealth {
  /**
   * `up`: every tier and the bus are up. `degraded`: something is down, yet what the options
   * require is up. `down`: a required tier (or the required bus) is down.
   */
  status: 'up' | 'degraded' | 'down';
  /** Each tier by name, nearest first. */
  tiers: Record<string, TierHealth>;
  /** The invalidation bus: `absent` when the store has none. */
  bus: 'up' | 'down' | 'absent';
  /**
   * The probe read (see {@link TieredCacheHealthOptions.probe}): `done` within `timeoutMs`,
   * `pending` past it (still running), `off`.
   */
  probe: 'done' | 'pending' | 'off';
  /** What is down and what that means, when the status is not `up`. */
  message?: string;
}

/**
 * A Terminus health indicator result: `{ [key]: { status, tiers, bus, probe, message? } }`
 * (Terminus' `HealthIndicatorResult<Key>`).
 */
export type TieredCacheHealthResult<Key extends string = string> = Record<Key, TieredCacheHealth>;

interface ResolvedOptions {
  /** The names of the tiers that must be up; `undefined` for `'any'`. */
  required: ReadonlySet<string> | undefined;
  requireBus: boolean;
  probe: boolean;
  timeoutMs: number;
}

const PATH = 'isHealthy options';
const DEFAULT_TIMEOUT_MS = 500;

/**
 * A `@nestjs/terminus` health indicator for the tiered cache: each tier (up or down, and its
 * circuit) and the invalidation bus, under one key. Add it to the providers of the module that
 * imports `TerminusModule` (where `TieredCache` can be injected: `TieredCacheModule` global, or
 * imported there), then:
 *
 * ```ts
 * @Get('health') @HealthCheck()
 * check() { return this.health.check([() => this.cache.isHealthy('cache')]); }
 * ```
 *
 * Where a tier's state comes from: its circuit breaker tells what requests get (open: the tier
 * is skipped) at no cost, but learns only from traffic: a tier that died while the app sent it
 * nothing still looks closed, and an open circuit closes only when a request tries it after its
 * cooldown (which a readiness check that took the app out of traffic would never let come). So by
 * default each check also reads a key nobody writes through the chain, the cheapest request
 * every tier answers (a miss), bounded by `timeoutMs` (see {@link TieredCacheHealthOptions.probe}):
 * a tier is down when its circuit is open or that read failed there.
 *
 * `@nestjs/terminus` (11 or newer) is loaded by the first {@link isHealthy}, never by importing
 * this library; {@link check} needs no Terminus.
 */
@Injectable()
export class TieredCacheHealthIndicator {
  /** Terminus' result builder, loaded on first use. */
  private terminus: Promise<HealthIndicatorService> | undefined;
  /** The probe read in flight, shared by concurrent checks. */
  private probing: Promise<void> | undefined;
  /** Tier name → why the latest probe read that reached it failed there. */
  private failed = new Map<string, string>();
  /** Probe keys are this indicator's own (failures are told apart by key). */
  private readonly probeKey = `tiered-cache:health:${randomBytes(6).toString('hex')}`;
  private probes = 0;

  constructor(private readonly cache: TieredCache) {}

  /**
   * The cache's health as a Terminus result under `key`: `down` when what the options require is
   * down (Terminus then answers 503), `degraded` when something else is (200; Terminus 11 has no
   * `degraded`: `up` then, with the same details), `up` otherwise.
   * @throws InvalidOptionError for an invalid key or option (see {@link TieredCacheHealthOptions})
   * @throws TieredCacheError `E_MISSING_PEER` when `@nestjs/terminus` is not installed
   */
  async isHealthy<const Key extends string = 'cache'>(
    key: Key = 'cache' as Key,
    options?: TieredCacheHealthOptions,
  ): Promise<TieredCacheHealthResult<Key>> {
    if (typeof key !== 'string' || key === '')
      throw invalid('isHealthy key', `must be a non-empty string, got ${JSON.stringify(key)}`);
    const [terminus, health] = await Promise.all([this.loadTerminus(), this.check(options)]);
    const { status, ...details } = health;
    const session = terminus.check(key);
    // Terminus 11 has no `degraded`: `up` there, with the same details.
    const result =
      status === 'down'
        ? session.down(details)
        : status === 'degraded' && typeof session.degraded === 'function'
          ? session.degraded(details)
          : session.up(details);
    return result as unknown as TieredCacheHealthResult<Key>;
  }

  /**
   * The cache's health, without Terminus: what {@link isHealthy} reports.
   * @throws InvalidOptionError for an invalid option (see {@link TieredCacheHealthOptions})
   */
  async check(options: TieredCacheHealthOptions = {}): Promise<TieredCacheHealth> {
    const store = this.cache.store;
    const o = resolveOptions(options, store);
    let probe: TieredCacheHealth['probe'] = 'off';
    if (o.probe) {
      let done = false;
      let refused: { error: unknown } | undefined;
      await waitAtMost(
        this.probe(store).then(
          () => (done = true),
          (error: unknown) => (refused = { error }),
        ),
        o.timeoutMs,
      );
      // The store refused the probe's key (an app's `keyFn` that throws): the app's error.
      if (refused !== undefined) throw refused.error;
      probe = done ? 'done' : 'pending';
    }
    const tiers: Record<string, TierHealth> = {};
    for (const t of store.stats()) tiers[t.name] = this.tierHealth(t, o.probe);
    const bus = busHealth(store);
    return verdict(tiers, bus, probe, o);
  }

  private tierHealth(t: TierStats, probed: boolean): TierHealth {
    const failure = probed ? this.failed.get(t.name) : undefined;
    const health: TierHealth = { status: 'up', kind: t.kind, circuit: t.circuit };
    if (t.circuit === 'open' || failure !== undefined) {
      health.status = 'down';
      health.error =
        failure ?? 'circuit open: the store skips this tier until its cooldown is over';
    }
    return health;
  }

  /**
   * Starts a probe read unless one is in flight; resolves when it has ended (rejects only when
   * the store refuses its key).
   */
  private probe(store: TieredStore): Promise<void> {
    this.probing ??= this.readProbe(store).finally(() => (this.probing = undefined));
    return this.probing;
  }

  /**
   * Reads a key nobody writes, through every tier whose circuit lets it, and records which tiers
   * failed it (their failures are seen as they happen, for a check that stops waiting earlier).
   */
  private async readProbe(store: TieredStore): Promise<void> {
    const key = `${this.probeKey}:${++this.probes}`;
    const failures = new Map<string, string>();
    const off = store.events.on('tier-error', (e: TierError) => {
      if (e.key !== key) return;
      const why = messageOf(e.cause);
      failures.set(e.tier, why);
      this.failed.set(e.tier, why);
    });
    try {
      await store.get(key);
    } finally {
      off();
      // A tier the read skipped (circuit open) keeps the failure that opened it.
      const open = new Set(store.stats().flatMap((t) => (t.circuit === 'open' ? [t.name] : [])));
      for (const [tier, why] of this.failed)
        if (open.has(tier) && !failures.has(tier)) failures.set(tier, why);
      this.failed = failures;
    }
  }

  private loadTerminus(): Promise<HealthIndicatorService> {
    this.terminus ??= loadPeer(
      () => import('@nestjs/terminus'),
      'TieredCacheHealthIndicator.isHealthy() needs the @nestjs/terminus package: npm install @nestjs/terminus (or call check(), which does not)',
    ).then(
      (terminus) => new terminus.HealthIndicatorService(),
      (err: unknown) => {
        this.terminus = undefined; // a later call tries again
        throw err;
      },
    );
    return this.terminus;
  }
}

/** Checks `options` against the store's tiers. */
function resolveOptions(options: TieredCacheHealthOptions, store: TieredStore): ResolvedOptions {
  const o = optionsObject(PATH, options);
  onlyKnownKeys(PATH, o, HEALTH_OPTIONS);
  const tiers = store.stats();
  const requireBus = boolean(at(PATH, 'requireBus'), o.requireBus, false);
  if (requireBus && store.opts.bus === undefined)
    throw invalid(at(PATH, 'requireBus'), 'the store has no invalidation bus (its `bus` option)');
  return {
    required: requiredTiers(o.require, tiers),
    requireBus,
    probe: boolean(at(PATH, 'probe'), o.probe, true),
    timeoutMs: positiveMilliseconds(at(PATH, 'timeoutMs'), o.timeoutMs, DEFAULT_TIMEOUT_MS),
  };
}

/** The names of the tiers `require` names (see its doc); `undefined` for `'any'`. */
function requiredTiers(
  option: TieredCacheHealthOptions['require'],
  tiers: readonly TierStats[],
): ReadonlySet<string> | undefined {
  const path = at(PATH, 'require');
  if (option === undefined || option === 'any') return undefined;
  if (option === 'all') return new Set(tiers.map((t) => t.name));
  if (!Array.isArray(option))
    throw invalid(
      path,
      `must be 'any', 'all' or an array of tier names or kinds, got ${typeof option === 'string' ? JSON.stringify(option) : describeValue(option)}`,
    );
  const names = new Set<string>();
  const known = [...new Set(tiers.flatMap((t) => [t.name, t.kind]))];
  (option as readonly unknown[]).forEach((wanted, i) => {
    const byName = tiers.filter((t) => t.name === wanted);
    const matching = byName.length > 0 ? byName : tiers.filter((t) => t.kind === wanted);
    if (matching.length === 0) {
      const near = typeof wanted === 'string' ? nearestName(wanted, known) : undefined;
      throw invalid(
        at(path, i),
        `${JSON.stringify(wanted)} is neither the name nor the kind of a tier of this cache` +
          (near === undefined ? '' : ` (did you mean ${JSON.stringify(near)}?)`) +
          `; its tiers: ${tiers.map((t) => (t.name === t.kind ? t.name : `${t.name} (${t.kind})`)).join(', ')}`,
      );
    }
    for (const t of matching) names.add(t.name);
  });
  return names;
}

function busHealth(store: TieredStore): TieredCacheHealth['bus'] {
  if (store.opts.bus === undefined) return 'absent';
  return store.busStats()?.up ? 'up' : 'down';
}

/** The overall status, and a message saying what is down and what that means. */
function verdict(
  tiers: Record<string, TierHealth>,
  bus: TieredCacheHealth['bus'],
  probe: TieredCacheHealth['probe'],
  o: ResolvedOptions,
): TieredCacheHealth {
  const names = Object.keys(tiers);
  const down = names.filter((n) => tiers[n].status === 'down');
  const up = names.filter((n) => tiers[n].status === 'up');
  const health: TieredCacheHealth = { status: 'up', tiers, bus, probe };
  if (down.length === 0 && bus !== 'down') return health;
  const noTier = o.required === undefined && up.length === 0;
  const lacking = [
    ...down.filter((n) => o.required?.has(n)),
    ...(o.requireBus && bus === 'down' ? ['the invalidation bus'] : []),
  ];
  const parts = down.map((n) => `${n} is down (${tiers[n].error})`);
  if (bus === 'down') parts.push('the invalidation bus is down');
  let meaning: string;
  if (noTier || lacking.length > 0) {
    health.status = 'down';
    const reasons = noTier ? ['no tier can answer'] : [];
    if (lacking.length > 0) reasons.push(`required: ${lacking.join(', ')}`);
    meaning = reasons.join('; ');
  } else {
    health.status = 'degraded';
    meaning =
      down.length > 0
        ? `the cache serves from ${up.join(', ')}`
        : 'new entries of the local tiers live at most its degradedTtl';
  }
  health.message = `${parts.join('; ')}: ${meaning}`;
  return health;
}
