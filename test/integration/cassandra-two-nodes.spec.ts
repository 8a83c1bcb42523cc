import { errors, types } from 'cassandra-driver';
import { TieredStore, type CassandraConsistency, type TierError } from '../../lib';
import { CassandraCluster } from '../harness/cassandra-cluster';
import { uniqueName } from '../harness/env';
import { eventually } from '../support/eventually';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A real two-node Cassandra 2.1 cluster (127.0.0.2 and 127.0.0.3), keyspace at replication
 * factor 2: every node holds every row. One node is killed (SIGKILL) while readers and writers
 * go through the store. This file starts (and pays for) its own cluster; the global setup's
 * single node is not used.
 */

const keyspace = uniqueName('two_nodes').toLowerCase();
const namespace = uniqueName('two');
const replication = { class: 'SimpleStrategy', replication_factor: 2 };
/** Entries written before the load; the first half is rewritten during it, the rest only read. */
const N = 500;
const REWRITTEN = N / 2;
const WRITERS = 4;
const READERS = 6;
/** How long the load goes on after the kill, at least. */
const AFTER_KILL_MS = 4000;
/** The node killed: the first contact point. */
const VICTIM = 0;
const SURVIVOR = 1;

let cluster: CassandraCluster;
const stores: TieredStore[] = [];

beforeAll(async () => {
  cluster = await CassandraCluster.start({ heapMb: 512 });
}, 240_000);

afterAll(async () => {
  await Promise.all(stores.map((s) => s.disconnect().catch(() => undefined)));
  await cluster?.stop();
}, 60_000);

/**
 * A store whose only tier is the cluster (every read reaches Cassandra), and its tier errors.
 * - `everyCall`: a circuit breaker that never opens, so that every call reaches the tier.
 */
async function storeOver(
  contactPoints: string[],
  opts: {
    consistency?: CassandraConsistency;
    everyCall?: boolean;
  } = {},
) {
  const store = new TieredStore({
    namespace,
    ...(opts.everyCall && { circuitBreaker: { failures: 1000, timeouts: 1000 } }),
    tiers: [
      {
        type: 'cassandra',
        contactPoints,
        localDataCenter: 'datacenter1',
        keyspace,
        replication,
        timeout: 2000,
        ...(opts.consistency && { consistency: opts.consistency }),
      },
    ],
  });
  stores.push(store);
  const errors: TierError[] = [];
  store.on('error', (err: TierError) => errors.push(err));
  await store.connect({ failFast: true });
  return { store, errors };
}

/** The coordinator's answer inside a driver error (the first host's, when several were tried). */
function serverError(err: unknown): errors.ResponseError | undefined {
  if (err instanceof errors.ResponseError) return err;
  if (err instanceof errors.NoHostAvailableError) {
    return Object.values(err.innerErrors ?? {}).find((e) => e instanceof errors.ResponseError);
  }
  return undefined;
}

const keyOf = (i: number) => `k${i}`;
const initial = (key: string) => `${key}#0`;
const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** What the load did: counts, caller errors, and the latest value each writer got acknowledged. */
interface LoadState {
  stop: boolean;
  reads: number;
  writes: number;
  /** Rejected get or set promises. */
  rejected: string[];
  /** Reads of an entry that exists that resolved undefined. */
  misses: string[];
  wrong: string[];
  latest: Map<string, string>;
  killAt: number | undefined;
  readsAfterKill: number;
  writesAfterKill: number;
  /** Longest wait of a call in flight at the kill, counted from the kill. */
  recoverMs: number;
  maxLatencyBefore: number;
  maxLatencyAfter: number;
  /** Generation re-reads between the kill and the survivor's conviction of the dead node. */
  generationReads: number;
}

/**
 * Writers rewrite their own share of the first {@link REWRITTEN} keys and add new keys, one call
 * at a time each (so the last acknowledged value of a key is its latest); readers read every
 * initial key, expecting the exact value of the ones nobody rewrites.
 */
function startLoad(store: TieredStore) {
  const s: LoadState = {
    stop: false,
    reads: 0,
    writes: 0,
    rejected: [],
    misses: [],
    wrong: [],
    latest: new Map(),
    killAt: undefined,
    readsAfterKill: 0,
    writesAfterKill: 0,
    recoverMs: 0,
    maxLatencyBefore: 0,
    maxLatencyAfter: 0,
    generationReads: 0,
  };
  const timed = async (op: () => Promise<void>) => {
    const start = Date.now();
    try {
      await op();
    } finally {
      const end = Date.now();
      const killAt = s.killAt;
      if (killAt === undefined || end < killAt) {
        s.maxLatencyBefore = Math.max(s.maxLatencyBefore, end - start);
      } else {
        s.maxLatencyAfter = Math.max(s.maxLatencyAfter, end - start);
        if (start <= killAt) s.recoverMs = Math.max(s.recoverMs, end - killAt);
      }
    }
  };
  const writers = Array.from({ length: WRITERS }, async (_, w) => {
    const owned = Array.from({ length: REWRITTEN }, (_, i) => i)
      .filter((i) => i % WRITERS === w)
      .map(keyOf);
    for (let n = 1, o = 0; !s.stop; n++) {
      const key = n % 3 === 0 ? `new-${w}-${n}` : owned[o++ % owned.length];
      const value = `${key}#${n}`;
      await timed(async () => {
        try {
          await store.set(key, value);
          s.writes++;
          if (s.killAt !== undefined) s.writesAfterKill++;
          s.latest.set(key, value);
        } catch (err) {
          s.rejected.push(`set ${key}: ${message(err)}`);
        }
      });
    }
  });
  const readers = Array.from({ length: READERS }, async (_, r) => {
    for (let n = r * 83; !s.stop; n += 7) {
      const i = n % N;
      const key = keyOf(i);
      await timed(async () => {
        try {
          const v = await store.get<string>(key);
          s.reads++;
          if (s.killAt !== undefined) s.readsAfterKill++;
          if (v === undefined) s.misses.push(key);
          else if (i >= REWRITTEN ? v !== initial(key) : !v.startsWith(`${key}#`)) {
            s.wrong.push(`${key}: ${v}`);
          }
        } catch (err) {
          s.rejected.push(`get ${key}: ${message(err)}`);
        }
      });
    }
  });
  return { state: s, done: Promise.all([...writers, ...readers]) };
}

/** The keys of `expected` whose value read through `store` differs, as `key: got (expected)`. */
async function differences(store: TieredStore, expected: Map<string, string>): Promise<string[]> {
  const keys = [...expected.keys()];
  const diffs: string[] = [];
  for (let i = 0; i < keys.length; i += 100) {
    const chunk = keys.slice(i, i + 100);
    const values = await store.getMany<string>(chunk);
    chunk.forEach((k, j) => {
      if (values[j] !== expected.get(k)) diffs.push(`${k}: ${values[j]} (${expected.get(k)})`);
    });
  }
  return diffs;
}

describe('two-node Cassandra cluster, replication factor 2, one node killed', () => {
  /** The store under load, at the default consistency (localOne). */
  let main: Awaited<ReturnType<typeof storeOver>> | undefined;

  it('default consistency (localOne): no caller error and no lost entry under load', async () => {
    main = await storeOver(cluster.contactPoints);
    const { store, errors } = main;
    // While both nodes are up, quorum (2 of 2 replicas) works too.
    const quorum = await storeOver(cluster.contactPoints, { consistency: 'quorum' });
    expect(await quorum.store.set('quorum-before', 'both up')).toBe(true);

    const expected = new Map<string, string>();
    for (let i = 0; i < N; i++) expected.set(keyOf(i), initial(keyOf(i)));
    const entries = [...expected].map(([key, value]) => ({ key, value }));
    for (let i = 0; i < N; i += 100) await store.setMany(entries.slice(i, i + 100));
    expect(await differences(store, expected)).toEqual([]);

    const { state, done } = startLoad(store);
    let killAt = 0;
    let downAt = 0;
    try {
      expect(await eventually(() => state.reads >= 600 && state.writes >= 200, 60_000)).toBe(true);
      killAt = state.killAt = Date.now();
      await cluster.kill(VICTIM);
      let downError: unknown;
      const down = cluster.waitUntilDown(VICTIM).then(
        () => (downAt = Date.now()),
        (err: unknown) => (downError = err),
      );
      // Until the survivor convicts the dead node, a counter *update* goes through a counter
      // leader picked among both replicas, and about half time out. The store re-reads the
      // namespace generation as a counter: a plain read must keep it working (a timeout there
      // opened the circuit, and every call missed or failed for the cooldown).
      const generationReads = (async () => {
        while (downAt === 0 && downError === undefined) {
          await store.refreshGeneration();
          state.generationReads++;
          await sleep(250);
        }
      })();
      // The load goes on until the survivor has convicted the dead node (before that it still
      // counts it as a replica), for a few seconds at least, and for enough calls that they
      // cannot all have been answered before the driver noticed the kill.
      const kept = await eventually(
        () =>
          downError !== undefined ||
          (downAt > 0 &&
            Date.now() - killAt >= AFTER_KILL_MS &&
            state.readsAfterKill >= 500 &&
            state.writesAfterKill >= 200),
        90_000,
      );
      await down;
      await generationReads;
      if (downError !== undefined) throw downError;
      expect(kept).toBe(true);
    } finally {
      state.stop = true;
      await done;
    }
    const loadMs = Date.now() - killAt;
    const stats = store.stats()[0];
    process.stdout.write(
      `2 nodes RF 2, ${cluster.nodes[VICTIM].host} killed under load (localOne): ` +
        `${state.reads} reads, ${state.writes} writes (${state.readsAfterKill} reads and ` +
        `${state.writesAfterKill} writes in the ${loadMs} ms after the kill; the survivor ` +
        `marked it down after ${downAt - killAt} ms), ${state.rejected.length} caller errors, ` +
        `${state.misses.length} misses, ${state.wrong.length} wrong values, ` +
        `${errors.length} tier errors; calls in flight at the kill answered within ` +
        `${state.recoverMs} ms; max latency ${state.maxLatencyBefore} ms before / ` +
        `${state.maxLatencyAfter} ms after; ${state.generationReads} generation reads; ` +
        `circuit ${stats.circuit} ` +
        `(opened ${stats.circuitOpened})\n`,
    );
    expect(state.rejected).toEqual([]);
    expect(state.misses).toEqual([]);
    expect(state.wrong).toEqual([]);
    expect(errors.map((e) => e.message)).toEqual([]);
    expect(stats.circuitOpened).toBe(0);
    expect(state.generationReads).toBeGreaterThan(10);

    // Every entry, written before or during the outage, has its latest value on the survivor,
    // read by a new store that knows only that node.
    for (const [key, value] of state.latest) expected.set(key, value);
    const survivor = await storeOver([cluster.nodes[SURVIVOR].address]);
    expect(await differences(survivor.store, expected)).toEqual([]);
    expect(survivor.errors.map((e) => e.message)).toEqual([]);
  }, 240_000);

  it('quorum with one of two replicas down: writes fail (reported), reads miss', async () => {
    // On its own, this test still needs the node down.
    await cluster.kill(VICTIM);
    await cluster.waitUntilDown(VICTIM);
    main ??= await storeOver(cluster.contactPoints);
    const quorum = await storeOver(cluster.contactPoints, {
      consistency: 'quorum',
      everyCall: true,
    });

    // No tier accepted the write: the caller gets E_NOT_ACCEPTED, the cause is an error event.
    await expect(quorum.store.set('quorum-after', 'one down')).rejects.toMatchObject({
      code: 'E_NOT_ACCEPTED',
    });
    const reported = quorum.errors.filter((e) => e.operation === 'set');
    expect(reported).toHaveLength(1);
    expect(reported[0]).toMatchObject({ code: 'E_TIER_FAILED', key: 'quorum-after' });
    // Refused before anything was written, as the survivor knows its peer is down: Unavailable.
    const refusal = serverError(reported[0].cause);
    expect(refusal).toMatchObject({ code: types.responseErrorCodes.unavailableException });
    expect(await main.store.get('quorum-after')).toBeUndefined();
    // Reads at quorum are a miss (never a rejection), while localOne still reads the value.
    expect(await quorum.store.get(keyOf(N - 1))).toBeUndefined();
    expect(quorum.errors.filter((e) => e.operation === 'get')).toHaveLength(1);
    expect(await main.store.get(keyOf(N - 1))).toBe(initial(keyOf(N - 1)));
    process.stdout.write(`quorum, 1 of 2 replicas down: set refused: ${refusal?.message}\n`);
  }, 120_000);
});
