import { TieredStore, type TierOptions, type TieredStoreOptions } from '../../lib';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import {
  type CounterReport,
  type CounterWorker,
  epochMs,
  startCounterWorkers,
} from '../support/counter-worker';

const servers = testServers();
const keyspace = uniqueName('counters').toLowerCase();
dropKeyspaceAfterAll(keyspace);

const tiers: TierOptions[] = [
  { type: 'memory' },
  { type: 'memcached', servers: servers.memcached, timeout: 5000 },
  { type: 'cassandra', ...servers.cassandra, keyspace, timeout: 10_000 },
];
const options = (counters: TieredStoreOptions['counters']): TieredStoreOptions => ({
  tiers,
  namespace: uniqueName('n'),
  counters,
});

/** 1 to n. */
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** `increments` concurrent increments of `key` in this process, reported as the workers do. */
async function runHere(store: TieredStore, key: string, increments: number) {
  const report: CounterReport = { values: [], starts: [], ends: [], errors: [] };
  await Promise.all(
    range(increments).map(async () => {
      const start = epochMs();
      const value = await store.increment(key);
      report.values.push(value);
      report.starts.push(start);
      report.ends.push(epochMs());
    }),
  );
  return report;
}

/** Merges the reports of several processes. */
function merge(reports: CounterReport[]): CounterReport {
  return {
    values: reports.flatMap((r) => r.values),
    starts: reports.flatMap((r) => r.starts),
    ends: reports.flatMap((r) => r.ends),
    errors: reports.flatMap((r) => r.errors),
  };
}

/**
 * Calls whose value breaks the `'farthest'` contract: at least every increment that finished
 * before the call began, plus its own, and at most the final total.
 */
function outsideContract(report: CounterReport, total: number): string[] {
  const ends = [...report.ends].sort((a, b) => a - b);
  const finishedBefore = (t: number) => {
    let lo = 0;
    let hi = ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ends[mid] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  return report.values.flatMap((v, i) => {
    const least = finishedBefore(report.starts[i]) + 1;
    return v >= least && v <= total ? [] : [`call ${i}: ${v} not in [${least}, ${total}]`];
  });
}

describe('increment: what the value resolved means (real memcached and Cassandra)', () => {
  let workers: CounterWorker[] = [];
  const stores: TieredStore[] = [];

  afterEach(async () => {
    await Promise.all(workers.map((w) => w.close()));
    workers = [];
    await Promise.all(stores.splice(0).map((s) => s.disconnect()));
  });

  async function store(o: TieredStoreOptions) {
    const s = new TieredStore(o);
    stores.push(s);
    await s.connect({ failFast: true });
    return s;
  }

  it("counters: 'atomic': 200 concurrent increments in one process resolve 1 to 200, each once", async () => {
    const s = await store(options('atomic'));
    const { values } = await runHere(s, 'seq', 200);
    expect([...values].sort((a, b) => a - b)).toEqual(range(200));
  });

  it("counters: 'atomic': 10,000 increments over 4 processes resolve 1 to 10,000, each once", async () => {
    const shared = options('atomic');
    workers = await startCounterWorkers(4, shared);
    const report = merge(await Promise.all(workers.map((w) => w.run('seq', 2500))));
    expect(report.errors).toEqual([]);
    expect([...report.values].sort((a, b) => a - b)).toEqual(range(10_000));
    // The total is there for every instance to read.
    const reader = new TieredStore(shared);
    stores.push(reader);
    expect(await reader.increment('seq', 0)).toBe(10_000);
  }, 120_000);

  it("counters: 'farthest' (the default, Cassandra): every increment counts once; each value is within its documented bounds", async () => {
    const shared = options(undefined);
    workers = await startCounterWorkers(4, shared);
    const here = await store(shared);
    const reports = await Promise.all([
      ...workers.map((w) => w.run('total', 250)),
      runHere(here, 'total', 200),
    ]);
    const report = merge(reports);
    expect(report.errors).toEqual([]);
    const total = await here.increment('total', 0);
    expect(total).toBe(4 * 250 + 200);
    expect(outsideContract(report, total)).toEqual([]);
    // Not a sequence: concurrent calls may resolve one number (why 'atomic' exists).
    const distinct = new Set(report.values).size;
    console.log(
      `counters 'farthest': ${report.values.length} increments, ${distinct} distinct values, total ${total}`,
    );
  }, 120_000);
});
