import { setTimeout as sleep } from 'node:timers/promises';
import type { TierOptions } from '../../lib';
import { testServers, uniqueName } from '../harness/env';
import { HerdWorker, type RunReport } from '../support/herd-processes';

const servers = testServers();
const keyspace = uniqueName('herdproc').toLowerCase();
const memcached: TierOptions = { type: 'memcached', servers: servers.memcached };
const cassandra: TierOptions = { type: 'cassandra', ...servers.cassandra, keyspace };

/** Sums what the processes report. */
function total(reports: RunReport[]) {
  const values = new Set(reports.flatMap((r) => r.values));
  return {
    calls: reports.reduce((n, r) => n + r.calls, 0),
    answered: reports.reduce((n, r) => n + Object.values(r.statuses).reduce((a, b) => a + b, 0), 0),
    errors: reports.flatMap((r) => r.errors),
    values,
  };
}

describe('herd protection across Node processes (real servers)', () => {
  let workers: HerdWorker[] = [];

  afterEach(async () => {
    await Promise.all(workers.map((w) => w.close()));
    workers = [];
  });

  it.each([
    ['memory, memcached and Cassandra', [{ type: 'memory' }, memcached, cassandra]],
    ['Cassandra as the only shared tier', [{ type: 'memory' }, cassandra]],
  ])(
    '4 processes × 250 concurrent callers of a cold key, over %s → exactly 1 origin call',
    async (_name, tiers) => {
      workers = await HerdWorker.start(4, {
        tiers: tiers as TierOptions[],
        namespace: uniqueName('p'),
      });
      const reports = await Promise.all(
        workers.map((w) => w.run({ key: 'cold', callers: 250, delayMs: 200, ttl: 60_000 })),
      );
      const sum = total(reports);
      expect(sum.errors).toEqual([]);
      expect(sum.answered).toBe(1000);
      expect(sum.calls).toBe(1);
      expect(sum.values.size).toBe(1); // every caller got the one computed value
    },
  );

  it('a lease holder killed mid-compute: another process computes after the lease runs out; nobody hangs', async () => {
    const namespace = uniqueName('p');
    const herd = { lockTimeout: 2000 };
    workers = await HerdWorker.start(4, {
      tiers: [{ type: 'memory' }, memcached, cassandra],
      namespace,
      herd,
    });
    const [holder, ...others] = workers;
    const computing = holder.computing();
    void holder.run({ key: 'k', callers: 10, delayMs: 0, hang: true, ttl: 60_000 });
    await computing;
    const t0 = performance.now(); // the holder has its lease
    await holder.kill();
    await sleep(300);
    const reports = await Promise.all(
      others.map((w) => w.run({ key: 'k', callers: 100, delayMs: 50, ttl: 60_000 })),
    );
    const elapsed = performance.now() - t0;
    const sum = total(reports);
    expect(sum.errors).toEqual([]);
    expect(sum.answered).toBe(300);
    expect(sum.values.size).toBe(1);
    expect(sum.calls).toBe(1);
    // They waited for the dead holder's lease (2 s, counted in whole seconds by the server, so
    // ending 1 to 2 s after it was taken)…
    expect(elapsed).toBeGreaterThan(500);
    // …and not for ever: lockTimeout, plus a margin for three busy processes.
    expect(elapsed).toBeLessThan(herd.lockTimeout + 8000);
  });
});
