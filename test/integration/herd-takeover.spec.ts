import type { TierOptions } from '../../lib';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import { HerdWorker, type RunReport } from '../support/herd-processes';

const servers = testServers();
const keyspace = uniqueName('herdtake').toLowerCase();
const memcached: TierOptions = { type: 'memcached', servers: servers.memcached };
const cassandra: TierOptions = { type: 'cassandra', ...servers.cassandra, keyspace };
dropKeyspaceAfterAll(keyspace);

/**
 * Leases live `lockTimeout`, counted by both servers in whole seconds (so 2 to 3 s here). The
 * process that takes a crashed holder's lease over computes for longer than what is left of the
 * other waiters' own `lockTimeout`, yet well within its own lease.
 */
const LOCK_TIMEOUT = 3000;
const TAKEOVER_COMPUTE_MS = 1500;
const CALLERS = 5;

describe('after a lease holder crashes, exactly one process takes over (real servers)', () => {
  let workers: HerdWorker[] = [];

  afterEach(async () => {
    await Promise.all(workers.map((w) => w.close()));
    workers = [];
  });

  it.each([
    ['memcached', [{ type: 'memory' }, memcached]],
    ['Cassandra (consensus leases)', [{ type: 'memory' }, cassandra]],
  ])(
    'holder killed mid-compute + 3 waiting processes, lease on %s → 1 + 1 origin calls, one value, nobody hangs',
    async (_name, tiers) => {
      workers = await HerdWorker.start(4, {
        tiers: tiers as TierOptions[],
        namespace: uniqueName('t'),
        herd: { lockTimeout: LOCK_TIMEOUT },
      });
      const [holder, ...waiters] = workers;
      const computing = holder.computing();
      void holder.run({ key: 'k', callers: CALLERS, delayMs: 0, hang: true, ttl: 60_000 });
      await computing;
      // The holder has its lease and is computing: the others start waiting for it, then it dies.
      const t0 = performance.now();
      const runs = waiters.map((w) =>
        w.run({ key: 'k', callers: CALLERS, delayMs: TAKEOVER_COMPUTE_MS, ttl: 60_000 }),
      );
      await holder.kill();
      const reports: RunReport[] = await Promise.all(runs);
      const elapsed = performance.now() - t0;

      const calls = reports.reduce((n, r) => n + r.calls, 0);
      const errors = reports.flatMap((r) => r.errors);
      const values = new Set(reports.flatMap((r) => r.values));
      const answered = reports.reduce(
        (n, r) => n + Object.values(r.statuses).reduce((a, b) => a + b, 0),
        0,
      );
      expect({ calls: 1 + calls, errors }).toEqual({ calls: 2, errors: [] });
      expect(answered).toBe(3 * CALLERS);
      // Every waiter got the one value the process that took over computed.
      expect(values.size).toBe(1);
      const { computedBy } = JSON.parse([...values][0]) as { computedBy: number };
      const takeover = reports.find((r) => r.calls === 1);
      expect(computedBy).toBe(takeover?.pid);
      // Bounded: the dead holder's lease (at most 3 s), one compute, polling and margin.
      expect(elapsed).toBeLessThan(LOCK_TIMEOUT + TAKEOVER_COMPUTE_MS + 8000);
    },
    60_000,
  );
});
