import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { createTieredStore } from '../../lib';
import { collectMetrics } from '../../lib/telemetry/prometheus';

/**
 * grafana/tiered-cache.dashboard.json asks only for what the code exports: every PromQL
 * expression (panel targets, the namespace variable's query) names metrics registered by
 * `collectMetrics` with the default prefix, and only their labels.
 */

/** Jest runs from the repository root. */
const DASHBOARD = join(process.cwd(), 'grafana', 'tiered-cache.dashboard.json');

/** What an expression uses: metric names, and label names (matchers and groupings). */
interface Uses {
  metrics: string[];
  labels: string[];
}

/** PromQL words that are not metric names: operators, modifiers. */
const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
]);

/**
 * The metric and label names of a PromQL expression, read by a small scanner (enough for the
 * dashboard's expressions; Grafana's `$variables` stand for values, never names).
 */
function uses(expr: string): Uses {
  const labels: string[] = [];
  let rest = expr
    .replace(/\$\{[^}]*\}|\$\w+/g, 'VAR')
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\[[^\]]*\]/g, '');
  rest = rest.replace(/\{([^}]*)\}/g, (_all, matchers: string) => {
    for (const m of matchers.matchAll(/([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)/g)) labels.push(m[1]);
    return ' ';
  });
  rest = rest.replace(
    /\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g,
    (_all, names: string) => {
      labels.push(
        ...names
          .split(',')
          .map((n) => n.trim())
          .filter(Boolean),
      );
      return ' ';
    },
  );
  const metrics: string[] = [];
  for (const m of rest.matchAll(/[A-Za-z_:][\w:]*(?=\s*(\(?))/g)) {
    const word = m[0];
    const isCall = m[1] === '(';
    if (isCall || KEYWORDS.has(word) || word === 'VAR') continue;
    metrics.push(word);
  }
  return { metrics, labels };
}

/** Every PromQL expression of the dashboard, with where it is (for messages). */
function expressions(dashboard: unknown): Array<{ where: string; expr: string }> {
  const found: Array<{ where: string; expr: string }> = [];
  const walk = (node: unknown, where: string): void => {
    if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${where}[${i}]`));
    if (node === null || typeof node !== 'object') return;
    const o = node as Record<string, unknown>;
    const here = typeof o.title === 'string' ? `${where} "${o.title}"` : where;
    if (typeof o.expr === 'string') found.push({ where: here, expr: o.expr });
    for (const [k, v] of Object.entries(o)) if (k !== 'expr') walk(v, `${here}.${k}`);
  };
  walk(dashboard, 'dashboard');
  return found;
}

/** The `label_values(metric, label)` queries of the dashboard's variables. */
function variableQueries(dashboard: { templating: { list: Array<Record<string, unknown>> } }) {
  return dashboard.templating.list
    .filter((v) => v.type === 'query')
    .map((v) => {
      const q = v.query as string | { query: string };
      return { name: v.name as string, query: typeof q === 'string' ? q : q.query };
    });
}

/** The names exported by `collectMetrics` (histograms by their series), with their labels. */
async function exported(): Promise<Map<string, Set<string>>> {
  const registry = new Registry();
  const store = createTieredStore({ tiers: [{ type: 'memory' }] });
  const metrics = await collectMetrics(store, { registry });
  try {
    const names = new Map<string, Set<string>>();
    for (const m of registry.getMetricsAsArray()) {
      const { name, labelNames } = m as unknown as { name: string; labelNames: string[] };
      const type = (await registry.getSingleMetric(name)!.get()).type as unknown as string;
      const labels = new Set(labelNames);
      if (type === 'histogram') {
        names.set(`${name}_bucket`, new Set([...labels, 'le']));
        names.set(`${name}_sum`, labels);
        names.set(`${name}_count`, labels);
      } else {
        names.set(name, labels);
      }
    }
    return names;
  } finally {
    await metrics.detach();
    await store.disconnect();
  }
}

describe('the Grafana dashboard', () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8'));

  it('the scanner finds metrics and labels', () => {
    expect(
      uses(
        'histogram_quantile(0.99, sum by (namespace, le) (rate(a_bucket{namespace=~"$namespace", x!="y"}[$__rate_interval]))) / on(namespace) group_left count(b == 0) or vector(1)',
      ),
    ).toEqual({
      metrics: ['a_bucket', 'b'],
      labels: ['namespace', 'x', 'namespace', 'le', 'namespace'],
    });
  });

  it('has the panels the README promises', () => {
    const titles = (dashboard.panels as Array<{ title: string }>).map((p) => p.title);
    expect(titles).toEqual(
      expect.arrayContaining([
        'Hit ratio per tier',
        'Origin calls per second',
        'Stale ratio',
        'Tier latency (p99, p50)',
        'Tier errors and skipped operations',
        'Circuit state',
        'Memory tier bytes',
        'Bus delivery lag (p99, p50)',
      ]),
    );
  });

  it('names only metrics the code exports, with their labels', async () => {
    const names = await exported();
    expect(names.has('tiered_cache_reads_total')).toBe(true);
    const exprs = expressions(dashboard);
    expect(exprs.length).toBeGreaterThan(15);
    const problems: string[] = [];
    for (const { where, expr } of exprs) {
      const { metrics, labels } = uses(expr);
      if (metrics.length === 0) problems.push(`${where}: names no metric: ${expr}`);
      for (const metric of metrics)
        if (!names.has(metric)) problems.push(`${where}: ${metric} is not exported`);
      const known = new Set(metrics.flatMap((m) => [...(names.get(m) ?? [])]));
      for (const label of labels)
        if (!known.has(label)) problems.push(`${where}: no metric of it has the label ${label}`);
    }
    for (const { name, query } of variableQueries(dashboard)) {
      const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(query);
      if (m === null) problems.push(`variable ${name}: not label_values(metric, label): ${query}`);
      else if (!names.get(m[1])?.has(m[2]))
        problems.push(`variable ${name}: ${m[1]} has no label ${m[2]}`);
    }
    expect(problems).toEqual([]);
  });
});
