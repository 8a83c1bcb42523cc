import { setTimeout as sleep } from 'node:timers/promises';
import type { TierOptions } from '../lib';
import { HerdWorker, type RunCommand, type RunReport } from '../test/support/herd-processes';
import type { BenchServers } from './servers';

const CALLERS = 1000;
const ORIGIN_MS = 50;

interface Row {
  scenario: string;
  processes: number;
  calls: number;
  p50: number;
  p99: number;
  errors: number;
}

/**
 * The thundering herd: 1,000 callers of one cold key at once, in 1 process and spread over 4
 * (forked app instances sharing memcached and Cassandra), each origin call taking 50 ms. Prints
 * origin calls and caller latency (p50/p99) for no protection (get, else compute and set),
 * cache-manager's `wrap` over the same tiers, and ours; then ours serving a stale entry during
 * its refresh, against plain hits, in the same processes.
 */
export async function stampede(servers: BenchServers): Promise<boolean> {
  const tiers: TierOptions[] = [
    { type: 'memory' },
    { type: 'memcached', servers: servers.memcached },
    { type: 'cassandra', ...servers.cassandra, keyspace: `bench_herd_${process.pid}` },
  ];
  const rows: Row[] = [];
  for (const processes of [1, 4]) {
    const workers = await HerdWorker.start(processes, {
      tiers,
      namespace: `stampede${process.pid}x${processes}`,
    });
    try {
      const burst = async (cmd: Omit<RunCommand, 'cmd' | 'callers' | 'delayMs'>) =>
        summarize(
          await Promise.all(
            workers.map((w) => w.run({ ...cmd, callers: CALLERS / processes, delayMs: ORIGIN_MS })),
          ),
        );
      for (const mode of ['none', 'wrap', 'ours'] as const) {
        const label = { none: 'no protection', wrap: 'cache-manager wrap', ours: 'ours: getOrSet' };
        const r = await burst({ key: `cold:${mode}`, mode, ttl: 60_000 });
        rows.push({ scenario: label[mode], processes, ...r });
      }
      // Stale-while-revalidate: prime, let the TTL pass, then a burst during the refresh…
      const herd = { grace: 60_000 };
      await burst({ key: 'swr', ttl: 1500, herd });
      await sleep(1600);
      const stale = await burst({ key: 'swr', ttl: 1500, herd });
      rows.push({ scenario: 'ours: stale, refreshing', processes, ...stale });
      // …and, the refresh done, a burst of plain hits.
      await sleep(2 * ORIGIN_MS + 100);
      const hits = await burst({ key: 'swr', ttl: 1500, herd });
      rows.push({ scenario: 'ours: hit', processes, ...hits });
    } finally {
      await Promise.all(workers.map((w) => w.close()));
    }
  }

  console.log(
    `\n## stampede: ${CALLERS} callers of one key at once, origin ${ORIGIN_MS} ms (latency in ms)`,
  );
  console.log(
    `  ${'scenario'.padEnd(26)} ${'procs'.padStart(5)} ${'origin calls'.padStart(12)} ${'p50'.padStart(8)} ${'p99'.padStart(8)}`,
  );
  for (const r of rows) {
    console.log(
      `  ${r.scenario.padEnd(26)} ${String(r.processes).padStart(5)} ${String(r.calls).padStart(12)} ${r.p50.toFixed(1).padStart(8)} ${r.p99.toFixed(1).padStart(8)}${r.errors ? `  (${r.errors} errors)` : ''}`,
    );
  }
  let ok = true;
  const check = (pass: boolean, line: string) => {
    ok &&= pass;
    console.log(`  ${pass ? 'PASS' : 'MISS'} ${line}`);
  };
  for (const processes of [1, 4]) {
    const row = (scenario: string) =>
      rows.find((r) => r.scenario === scenario && r.processes === processes)!;
    const ours = row('ours: getOrSet');
    check(
      ours.calls === 1 && ours.errors === 0,
      `${processes} process(es): ours made ${ours.calls} origin call(s) (target 1)`,
    );
    const ratio = row('ours: stale, refreshing').p99 / row('ours: hit').p99;
    check(
      ratio <= 2,
      `${processes} process(es): p99 while refreshing / p99 of hits = ${ratio.toFixed(2)}× (target ≤ 2×)`,
    );
  }
  return ok;
}

function summarize(reports: RunReport[]): Omit<Row, 'scenario' | 'processes'> {
  const latencies = reports.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  return {
    calls: reports.reduce((n, r) => n + r.calls, 0),
    p50: at(0.5),
    p99: at(0.99),
    errors: reports.reduce((n, r) => n + r.errors.length, 0),
  };
}
