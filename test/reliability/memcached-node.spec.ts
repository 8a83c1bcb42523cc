import { setTimeout as sleep } from 'node:timers/promises';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import type { MemcachedNode } from '../harness/memcached';
import { eventually } from '../support/eventually';
import { appInstances, closeInstances, Load, plan, type AppInstance } from '../support/load';
import { freeze, MemcachedTestbed, pidOf } from '../support/memcached';

/**
 * Reliability of one memcached node failing under load from two app instances (3 nodes of their
 * own, Cassandra behind):
 * - kill: SIGKILL, then a new memcached on the same port (empty, as a restarted one is);
 * - hang: SIGSTOP (connections stay open, nothing answers), then SIGCONT.
 * Callers see no error and no wrong value; the failed node's keys are served by Cassandra, so the
 * origin is never called again after warming; every instance takes the node off its ring, and
 * once it is back it rejoins every ring and the memcached hit ratio comes back (recovery time).
 */
const { cassandra } = testServers();
const keyspace = uniqueName('rel_node').toLowerCase();
dropKeyspaceAfterAll(keyspace);
const bed = new MemcachedTestbed();
let apps: AppInstance[] = [];
afterEach(async () => {
  await closeInstances(apps);
  apps = [];
});
afterAll(() => bed.close());

const PLAN = plan({
  short: { steadyMs: 1000, killMs: 3000, hangMs: 3000, settleMs: 1000, rounds: 1 },
  chaos: { steadyMs: 5000, killMs: 15_000, hangMs: 10_000, settleMs: 5000, rounds: 2 },
});
const READ_KEYS = 200;
/**
 * Origin calls allowed beyond one per key: a lease or Cassandra read that times out on a busy
 * machine lets a caller compute. Without the lease (warming) or Cassandra (the outage) it would
 * be hundreds or about a third of the keys.
 */
const SLACK = READ_KEYS / 20;

interface Fault {
  outageMs: number;
  begin(node: MemcachedNode): Promise<void>;
  end(node: MemcachedNode): Promise<void>;
}

const FAULTS: Record<'kill' | 'hang', Fault> = {
  kill: {
    outageMs: PLAN.killMs,
    begin: (node) => node.stop('SIGKILL'),
    end: (node) => node.start(),
  },
  hang: {
    outageMs: PLAN.hangMs,
    begin: (node) => freeze(pidOf(node)),
    end: async (node) => void process.kill(pidOf(node), 'SIGCONT'),
  },
};

/** What one round may take at most: outage, failover probes (2 s), recovery, settling, margin. */
const roundMs = (f: Fault) => f.outageMs + PLAN.settleMs + 45_000;

describe('reliability: one of 3 memcached nodes fails under load, then comes back', () => {
  it.each(Object.keys(FAULTS) as Array<keyof typeof FAULTS>)(
    `%s, ${PLAN.rounds} round(s): no caller error, no wrong value, no extra origin call; recovers`,
    async (name) => {
      const fault = FAULTS[name];
      const nodes = [await bed.node(), await bed.node(), await bed.node()];
      const victim = nodes[1];
      await appInstances(
        2,
        {
          namespace: uniqueName(name),
          memcached: nodes.map((n) => n.address),
          cassandra: { ...cassandra, keyspace },
        },
        apps,
      );
      const load = new Load({
        instances: apps,
        readKeys: READ_KEYS,
        maxMs: 30_000 + PLAN.rounds * roundMs(fault),
      });
      await load.warm();
      const warmOrigin = load.counts.origin;
      load.start();
      const recoveries: number[] = [];
      let outageCalls = Infinity;
      let baseline: number;
      let down = false;
      try {
        expect(await eventually(() => load.warmedUp(PLAN.steadyMs), 30_000)).toBe(true);
        baseline = load.hitRatio();
        for (let round = 0; round < PLAN.rounds; round++) {
          await fault.begin(victim);
          down = true;
          const calls = load.counts.calls;
          // Every instance finds it failed and takes it off its ring.
          const seen = await eventually(
            () => apps.every((a) => a.memcached.failedServers.includes(victim.address)),
            15_000,
          );
          expect(seen).toBe(true);
          await sleep(fault.outageMs); // the outage itself: the load runs on against 2 nodes
          outageCalls = Math.min(outageCalls, load.counts.calls - calls);
          await fault.end(victim);
          down = false;
          const back = load.now();
          const settled = await eventually(
            () => load.steadyFor(back) >= PLAN.settleMs,
            roundMs(fault),
          );
          expect(settled).toBe(true);
          recoveries.push(load.recoveryMs(back)!);
        }
      } finally {
        if (down && name === 'hang') process.kill(pidOf(victim), 'SIGCONT');
        await load.stop();
      }
      load.report(`${name} (${PLAN.rounds} × ${fault.outageMs} ms)`, Math.max(...recoveries), [
        `recoveries ${recoveries.join(', ')} ms`,
        `memcached hit ratio before ${baseline.toFixed(3)}`,
      ]);
      expect(load.errorSamples).toEqual([]);
      expect(load.wrongSamples).toEqual([]);
      expect(load.counts.errors).toBe(0);
      expect(load.counts.wrong).toBe(0);
      // The load really ran through each outage, on a warm cache.
      expect(outageCalls).toBeGreaterThan(100);
      expect(baseline).toBeGreaterThanOrEqual(0.9);
      // One origin call per key, made while warming (the lease let one instance compute each);
      // the failed node's keys came from Cassandra, not from the origin again.
      expect(warmOrigin).toBeGreaterThanOrEqual(READ_KEYS);
      expect(warmOrigin).toBeLessThanOrEqual(READ_KEYS + SLACK);
      expect(load.counts.origin - warmOrigin).toBeLessThanOrEqual(SLACK);
      expect(recoveries).toHaveLength(PLAN.rounds);
      expect(apps.every((a) => a.memcached.failedServers.length === 0)).toBe(true);
    },
    120_000 + PLAN.rounds * roundMs(FAULTS.kill),
  );
});
