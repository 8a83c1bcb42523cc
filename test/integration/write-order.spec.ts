import { TieredStore, type TierOptions } from '../../lib';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';

const servers = testServers();
const keyspace = uniqueName('order').toLowerCase();
dropKeyspaceAfterAll(keyspace);

/**
 * A burst of 6 × PAIRS writes and deletes (plus their lease invalidations) takes a single Cassandra
 * node on two shared cores seconds (a delete reads, then deletes, and resets a counter): 1,000
 * pairs took 12 s on an idle machine and over a minute on a busy one. Chains with Cassandra send
 * 300 pairs, still hundreds of calls in flight at once. Per-request timeouts are raised so that
 * what is measured is the order of the writes, not the servers' throughput on a busy machine.
 */
const BURST_TIMEOUT_MS = 30_000;
const TEST_TIMEOUT_MS = 180_000;

/** Every tier alone, and the whole chain, with the pairs per kind each sends. */
const CHAINS: Array<[string, number, () => TierOptions[]]> = [
  ['memory', 1000, () => [{ type: 'memory' }]],
  [
    'memcached',
    1000,
    () => [{ type: 'memcached', servers: servers.memcached, timeout: BURST_TIMEOUT_MS }],
  ],
  [
    'cassandra',
    300,
    () => [{ type: 'cassandra', ...servers.cassandra, keyspace, timeout: BURST_TIMEOUT_MS }],
  ],
  [
    'memory → memcached → cassandra',
    300,
    () => [
      { type: 'memory' },
      { type: 'memcached', servers: servers.memcached, timeout: BURST_TIMEOUT_MS },
      { type: 'cassandra', ...servers.cassandra, keyspace, timeout: BURST_TIMEOUT_MS },
    ],
  ],
];

/**
 * Writes take effect in the order they were called, per key, whether or not the caller awaited:
 * set-then-delete leaves nothing, delete-then-set leaves the value, set A then set B leaves B.
 * Each store is fresh, so the first writes race connecting (and, on Cassandra, preparing).
 */
describe.each(CHAINS)('write order: %s', (_name, PAIRS, tiers) => {
  const open: TieredStore[] = [];

  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.disconnect()));
    // Healthy servers: an outcome is right or wrong by order alone, never by a failed write.
    expect(errors.splice(0).map(String)).toEqual([]);
  });

  const errors: unknown[] = [];

  function fresh(namespace: string): TieredStore {
    const store = new TieredStore({ tiers: tiers(), namespace });
    store.on('error', (e) => errors.push(e));
    open.push(store);
    return store;
  }

  /** The key's value as every tier of a new store sees it (nothing cached in between). */
  async function outcome(namespace: string, keys: string[]): Promise<unknown[]> {
    const reader = fresh(namespace);
    return reader.getMany(keys);
  }

  it.each([
    ['connected just now', true],
    ['never connected (connect on first use)', false],
  ])(
    `${PAIRS} unawaited pairs per kind, store %s: 0 wrong outcomes`,
    async (_label, connect) => {
      const namespace = uniqueName('order');
      const store = fresh(namespace);
      if (connect) await store.connect({ failFast: true });
      const setThenDelete = Array.from({ length: PAIRS }, (_, i) => `sd:${i}`);
      const deleteThenSet = Array.from({ length: PAIRS }, (_, i) => `ds:${i}`);
      const setThenSet = Array.from({ length: PAIRS }, (_, i) => `ss:${i}`);
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < PAIRS; i++) {
        calls.push(store.set(setThenDelete[i], `v${i}`, 60_000), store.delete(setThenDelete[i]));
        calls.push(store.delete(deleteThenSet[i]), store.set(deleteThenSet[i], `v${i}`, 60_000));
        calls.push(
          store.set(setThenSet[i], 'A', 60_000),
          store.set(setThenSet[i], `B${i}`, 60_000),
        );
      }
      await Promise.all(calls);

      const wrong: string[] = [];
      const check = (keys: string[], seen: unknown[], want: (i: number) => unknown) =>
        keys.forEach((k, i) => {
          if (seen[i] !== want(i)) wrong.push(`${k}: ${String(seen[i])}`);
        });
      // This store, and (when a tier is shared) a new one that has cached nothing in between.
      const shared = tiers().some((t) => t.type !== 'memory');
      for (const view of shared ? [store, null] : [store]) {
        const read = (keys: string[]) =>
          view === null ? outcome(namespace, keys) : view.getMany(keys);
        check(setThenDelete, await read(setThenDelete), () => undefined);
        check(deleteThenSet, await read(deleteThenSet), (i) => `v${i}`);
        check(setThenSet, await read(setThenSet), (i) => `B${i}`);
      }
      expect({ wrong: wrong.length, first: wrong.slice(0, 5) }).toEqual({ wrong: 0, first: [] });
    },
    TEST_TIMEOUT_MS,
  );
});
