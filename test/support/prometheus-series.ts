import type { Registry } from 'prom-client';

/** `name{label=value,…}`, labels sorted by name: how {@link seriesOf} names a series. */
export function seriesKey(name: string, labels: Record<string, string | number>): string {
  const sorted = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`);
  return `${name}{${sorted.join(',')}}`;
}

/** Every series of `registry` but histogram buckets, by {@link seriesKey}. */
export async function seriesOf(registry: Registry): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const metric of await registry.getMetricsAsJSON())
    for (const v of metric.values as Array<{
      metricName?: string;
      labels: Record<string, string | number>;
      value: number;
    }>) {
      const name = v.metricName ?? metric.name;
      if (!name.endsWith('_bucket')) out[seriesKey(name, v.labels)] = v.value;
    }
  return out;
}

/** The value of one series: `name` with exactly `labels` (no bucket), or undefined. */
export async function seriesValue(
  registry: Registry,
  name: string,
  labels: Record<string, string>,
): Promise<number | undefined> {
  return (await seriesOf(registry))[seriesKey(name, labels)];
}
