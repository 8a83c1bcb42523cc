import { KeyBuilder, TieredStore } from '../../lib';
import { MemcachedTier } from '../../lib/tiers/memcached/memcached.tier';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import type { MemcachedNode } from '../harness/memcached';
import { eventually } from '../support/eventually';
import { ManualClock } from '../support/manual-clock';
import { freeze, MemcachedTestbed, pidOf } from '../support/memcached';

const { cassandra } = testServers();
const keyspace = uniqueName('iso').toLowerCase();
dropKeyspaceAfterAll(keyspace);
const FAILOVER = 30_000;
const bed = new MemcachedTestbed();
afterAll(() => bed.close());

/** A store over [memcached on `nodes` (tier built here, so its state can be read), Cassandra]. */
async function chainOver(nodes: MemcachedNode[], clock: ManualClock) {
  const namespace = uniqueName('iso');
  const tier = bed.tier(
    new MemcachedTier(
      {
        type: 'memcached',
        servers: nodes.map((n) => n.address),
        // Generous: the 2-core test machine also runs Cassandra, other memcached and Jest.
        timeout: 1000,
        failoverTime: FAILOVER,
      },
      { clock, name: 'memcached' },
    ),
  );
  const store = bed.store(
    new TieredStore({
      namespace,
      clock,
      tiers: [tier, { type: 'cassandra', ...cassandra, keyspace }],
    }),
  );
  const errors: Error[] = [];
  store.on('error', (err: Error) => errors.push(err));
  await store.connect({ failFast: true });
  return { store, tier, errors, finals: new KeyBuilder({ namespace }) };
}

/** Readers walking `keys` concurrently until stopped; counts reads, rejections, wrong values. */
function load(store: TieredStore, keys: string[], value: (k: string) => string, readers = 6) {
  const state = { reads: 0, rejected: 0, wrong: [] as string[], stop: false };
  const done = Promise.all(
    Array.from({ length: readers }, async (_, r) => {
      for (let i = r * 37; !state.stop; i++) {
        const k = keys[(i * 7) % keys.length];
        try {
          const v = await store.get(k);
          state.reads++;
          if (v !== value(k)) state.wrong.push(`${k}: ${String(v)}`);
        } catch {
          state.rejected++;
        }
      }
    }),
  );
  return { state, done };
}

describe('memcached per-node failure isolation (real processes, SIGSTOP)', () => {
  it('one hung node of 3: only its keys leave memcached, the tier circuit stays closed, it rejoins', async () => {
    const nodes = [await bed.node(), await bed.node(), await bed.node()];
    const victim = nodes[1];
    const clock = new ManualClock();
    const { store, tier, errors, finals } = await chainOver(nodes, clock);
    const N = 300;
    const keys = Array.from({ length: N }, (_, i) => `k${i}`);
    const value = (k: string) => `value of ${k}`;
    for (let i = 0; i < N; i += 100) {
      await store.setMany(keys.slice(i, i + 100).map((k) => ({ key: k, value: value(k) })));
    }
    const owner = new Map(keys.map((k) => [k, tier.serverFor(finals.build(k))]));
    const others = keys.filter((k) => owner.get(k) !== victim.address);
    expect(N - others.length).toBeGreaterThan(N / 10);

    const { state, done } = load(store, keys, value);
    try {
      expect(await eventually(() => state.reads > 600, 30_000)).toBe(true);
      await freeze(pidOf(victim));
      const readsAtFreeze = state.reads;
      const before = store.stats()[0];
      // Several full passes over the keys while the node hangs.
      expect(await eventually(() => state.reads - readsAtFreeze > 4 * N, 60_000)).toBe(true);
      const during = store.stats()[0];
      process.stdout.write(
        `1 of 3 hung: ${state.reads - readsAtFreeze} reads, ${during.hits - before.hits} memcached ` +
          `hits, ${state.rejected} rejected, ${errors.length} tier errors, circuit ${during.circuit}\n`,
      );
      expect(during.circuitOpened).toBe(0);
      expect(during.circuit).toBe('closed');
      // Keys of the two live nodes (and the hung node's, rewarmed on them) came from memcached.
      expect(during.hits - before.hits).toBeGreaterThanOrEqual(2 * others.length);
      expect(tier.failedServers).toEqual([victim.address]);
      expect(others.every((k) => tier.serverFor(finals.build(k)) === owner.get(k))).toBe(true);
      // Whatever was reported names only the hung node and says so.
      for (const e of errors) {
        const cause = (e as { cause?: { partial?: boolean; server?: string } }).cause;
        expect(cause?.partial).toBe(true);
      }
    } finally {
      process.kill(pidOf(victim), 'SIGCONT');
      state.stop = true;
      await done;
    }
    expect(state.rejected).toBe(0);
    expect(state.wrong).toEqual([]);

    // Back: once failoverTime has passed, the next request probes it and it takes its keys back.
    clock.advance(FAILOVER);
    const rejoined = await eventually(async () => {
      await store.get(keys[0]);
      return tier.failedServers.length === 0;
    }, 20_000);
    expect(rejoined).toBe(true);
    expect(keys.every((k) => tier.serverFor(finals.build(k)) === owner.get(k))).toBe(true);
    expect(store.stats()[0].circuitOpened).toBe(0);
  });

  it('every node hung: the tier as a whole failed, so its circuit opens; callers still get values', async () => {
    const nodes = [await bed.node(), await bed.node(), await bed.node()];
    const clock = new ManualClock();
    const { store, tier } = await chainOver(nodes, clock);
    const keys = Array.from({ length: 60 }, (_, i) => `all${i}`);
    const value = (k: string) => `value of ${k}`;
    await store.setMany(keys.map((k) => ({ key: k, value: value(k) })));
    for (const n of nodes) await freeze(pidOf(n));
    const { state, done } = load(store, keys, value, 4);
    try {
      expect(await eventually(() => store.stats()[0].circuitOpened > 0, 60_000)).toBe(true);
      expect(tier.failedServers.length).toBe(3);
    } finally {
      for (const n of nodes) process.kill(pidOf(n), 'SIGCONT');
      state.stop = true;
      await done;
    }
    expect(state.rejected).toBe(0);
    expect(state.wrong).toEqual([]);
  });
});
