import type { TierOptions } from '../../lib';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import { HerdWorker, type RunReport } from '../support/herd-processes';
import { plan } from '../support/load';

/**
 * Reliability: the process holding a key's read-through lease is SIGKILLed mid-compute while 3
 * other processes (each a TieredCacheModule over [memory, memcached, Cassandra], 5 callers each)
 * wait for it. Exactly one of them takes the lease over: 1 + 1 origin calls per crash, every
 * waiting caller answered with that one value, none with an error. Recovery time: from the kill
 * until the last waiting caller is answered.
 */
const servers = testServers();
const keyspace = uniqueName('rel_crash').toLowerCase();
dropKeyspaceAfterAll(keyspace);
const tiers: TierOptions[] = [
  { type: 'memory' },
  { type: 'memcached', servers: servers.memcached, timeout: 1000 },
  { type: 'cassandra', ...servers.cassandra, keyspace, timeout: 3000 },
];

const ROUNDS = plan({ short: 1, chaos: 3 });
/** The lease lives `lockTimeout`, counted in whole seconds by the servers (2 to 3 s here). */
const LOCK_TIMEOUT = 3000;
const TAKEOVER_COMPUTE_MS = 1500;
const CALLERS = 5;
const WAITERS = 3;
/** Per round: starting 4 workers (ts-node) on a busy machine, the dead lease, one compute. */
const ROUND_MS = 45_000;

describe('reliability: crash of a lease holder', () => {
  let workers: HerdWorker[] = [];

  afterEach(async () => {
    await Promise.all(workers.map((w) => w.close()));
    workers = [];
  });

  it(
    `${ROUNDS} crash(es) of a holder with ${WAITERS} processes waiting: 1 + 1 origin calls each, no caller error, one value`,
    async () => {
      const namespace = uniqueName('crash');
      let calls = 0;
      let origin = 0;
      let errors: string[] = [];
      let wrong: string[] = [];
      let slowest = 0;
      let answered = 0;
      for (let round = 0; round < ROUNDS; round++) {
        workers = await HerdWorker.start(1 + WAITERS, {
          tiers,
          namespace,
          herd: { lockTimeout: LOCK_TIMEOUT },
        });
        const [holder, ...waiters] = workers;
        const key = `k${round}`;
        const computing = holder.computing();
        void holder.run({ key, callers: CALLERS, delayMs: 0, hang: true, ttl: 60_000 });
        await computing;
        origin++; // the holder's own call, lost with it
        const runs = waiters.map((w) =>
          w.run({ key, callers: CALLERS, delayMs: TAKEOVER_COMPUTE_MS, ttl: 60_000 }),
        );
        const t0 = performance.now();
        await holder.kill();
        const reports: RunReport[] = await Promise.all(runs);
        slowest = Math.max(slowest, performance.now() - t0);

        const takeover = reports.filter((r) => r.calls > 0);
        origin += reports.reduce((n, r) => n + r.calls, 0);
        errors = [...errors, ...reports.flatMap((r) => r.errors)];
        const perRound = reports.reduce(
          (n, r) => n + Object.values(r.statuses).reduce((a, b) => a + b, 0),
          0,
        );
        answered += perRound;
        calls += WAITERS * CALLERS;
        // The one right value: computed by the one process that took the lease over.
        const expected = JSON.stringify({ computedBy: takeover[0]?.pid, call: 1 });
        wrong = [...wrong, ...reports.flatMap((r) => r.values.filter((v) => v !== expected))];
        expect(takeover).toHaveLength(1);
        await Promise.all(workers.map((w) => w.close()));
        workers = [];
      }
      console.log(
        `reliability lease holder crash (${ROUNDS} × ${WAITERS} processes × ${CALLERS} callers): ` +
          `${calls} calls, ${errors.length} caller errors, ${wrong.length} wrong values, ` +
          `${origin} origin calls, recovered in ${Math.round(slowest)} ms` +
          (errors.length ? `\n  caller errors: ${errors.slice(0, 5).join(' | ')}` : '') +
          (wrong.length ? `\n  wrong values: ${wrong.slice(0, 5).join(' | ')}` : ''),
      );
      expect(errors).toEqual([]);
      expect(wrong).toEqual([]);
      expect(answered).toBe(calls);
      expect(origin).toBe(2 * ROUNDS);
      // Bounded: the dead holder's lease (at most lockTimeout + 1 s), one compute, polling, margin.
      expect(slowest).toBeLessThan(LOCK_TIMEOUT + 1000 + TAKEOVER_COMPUTE_MS + 8000);
    },
    60_000 + ROUNDS * ROUND_MS,
  );
});
