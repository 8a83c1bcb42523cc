import { at, describeValue, invalid, onlyKnownKeys, optionNames, optionsObject } from '../options';

/**
 * The parts of a prom-client `Registry` the metrics use (prom-client is an optional peer
 * dependency: this type keeps it out of ours). A prom-client `Registry` is one.
 */
export interface MetricsRegistryLike {
  registerMetric(metric: unknown): void;
  getSingleMetric(name: string): unknown;
  removeSingleMetric(name: string): void;
}

/**
 * Prometheus metrics of a store (module option `metrics`, or `collectMetrics(store, options)`),
 * through prom-client, an optional peer dependency (`npm install prom-client`).
 */
export interface MetricsOptions {
  /**
   * The prom-client registry the metrics are registered in. Several stores may share one: their
   * series are told apart by the `namespace` label (stores of one namespace add up, see
   * `collectMetrics`).
   * @default prom-client's default registry (`register`), the one `@willsoto/nestjs-prometheus`
   * and `collectDefaultMetrics()` use
   */
  registry?: MetricsRegistryLike;
  /**
   * Prepended to every metric name (letters, digits, `_` and `:`, not starting with a digit).
   * @default 'tiered_cache_'
   */
  prefix?: string;
}

export const DEFAULT_METRICS_PREFIX = 'tiered_cache_';

const METRICS_OPTIONS = optionNames<MetricsOptions>({ registry: true, prefix: true });

/** What a metric name may begin with (Prometheus's metric name syntax, empty allowed). */
const PREFIX = /^([A-Za-z_:][A-Za-z0-9_:]*)?$/;

/** {@link MetricsOptions} checked, with defaults; `registry` undefined: prom-client's default. */
export interface MetricsConfig {
  registry: MetricsRegistryLike | undefined;
  prefix: string;
}

/**
 * Checks the `metrics` option at `path`: `true` (the defaults), `false` or `undefined` (no
 * metrics: `undefined` is returned), or {@link MetricsOptions}.
 */
export function metricsConfig(value: unknown, path = 'metrics'): MetricsConfig | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return { registry: undefined, prefix: DEFAULT_METRICS_PREFIX };
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw invalid(
      path,
      `must be true, false or an object { registry?, prefix? }, got ${what(value)}`,
    );
  const o = optionsObject<MetricsOptions>(path, value as MetricsOptions);
  onlyKnownKeys(path, o, METRICS_OPTIONS);
  const prefix = o.prefix ?? DEFAULT_METRICS_PREFIX;
  if (typeof prefix !== 'string' || !PREFIX.test(prefix))
    throw invalid(
      at(path, 'prefix'),
      `${what(prefix)} is not a metric name prefix (letters, digits, "_" and ":", not starting with a digit)`,
    );
  const registry = o.registry;
  if (registry !== undefined) {
    const r = registry as unknown as Record<string, unknown> | null;
    const missing = ['registerMetric', 'getSingleMetric', 'removeSingleMetric'].filter(
      (m) => typeof r?.[m] !== 'function',
    );
    if (missing.length > 0)
      throw invalid(
        at(path, 'registry'),
        `must be a prom-client Registry; ${describeValue(registry)} lacks ${missing.join(', ')}`,
      );
  }
  return { registry, prefix };
}

/** A value for messages: strings quoted, others by their type. */
function what(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : describeValue(value);
}
