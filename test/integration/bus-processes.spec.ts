import type { RedisNode } from '../harness/redis';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import {
  BusWorker,
  allUp,
  analyse,
  caughtUp,
  finalStates,
  quantile,
  type BusWorkerConfig,
  type KeyState,
  type ReadLog,
  type ReaderAnalysis,
  type WorkerState,
  type WriteLog,
} from '../support/bus-processes';
import { eventually } from '../support/eventually';
import { RedisTestbed, killRedis, restartRedis } from '../support/redis';

/**
 * The invalidation bus across real processes (issue 15: "3 processes sharing memcached,
 * Cassandra and Redis"). Three workers (test/support/bus-worker.ts), A, B and C, each a store
 * with tiers [memory, memcached, Cassandra] on the harness servers (a keyspace of this file's
 * own, dropped after) and a Redis bus, one namespace. A writes: each write sets a random key of
 * `k0`…`k299` to a new version number (the write's number) or, one time in five, deletes it; 4
 * loops of one write at a time, each over keys of its own, so that the writes of one key are
 * sequential. B and C read those keys with `get` in loops (and so hold them in memory).
 *
 * Definitions (see `analyse` in test/support/bus-processes.ts):
 * - A write is *delivered* to B when B's store emits the `invalidated` event of the message
 *   carrying it (the message A numbered for it, listing its key). *Delivery time*: that moment
 *   minus the moment A's `set`/`delete` resolved, on one machine's clock
 *   (`performance.timeOrigin + performance.now()` in each process).
 * - A read of key k in B that began at t (B's clock) must see the last write W of k delivered to
 *   B before t, or a later write: it is *stale beyond delivery* when it returns the value of a
 *   set older than W, or nothing when W is a set and no later delete of k had begun in A before
 *   the read ended. Both delivery and start are B's own times: no clock is compared across
 *   processes for it. A read that is older, in that sense, than a write completed in A before
 *   the read began, but not delivered to B yet, is *stale within delivery*: the bus allows it
 *   (printed only).
 *
 * Asserted: every write delivered to B and C (their `received` equals A's `published`, 0 gaps),
 * no read stale beyond delivery, no value A never wrote to that key, no caller error. Timing is
 * printed, never asserted (two busy cores): the delivery time, its two parts (in A before the
 * publish, publish to receipt) and each process's event-loop delay, which the delivery time's
 * tail follows.
 */
const servers = testServers();
const keyspace = uniqueName('busproc').toLowerCase();
dropKeyspaceAfterAll(keyspace);

/** Keys A writes (`k0`…): few enough that B and C hold each in memory between two writes. */
const KEYS = 300;
const TTL = 600_000;
/** A: concurrent loops of one write at a time, each over keys of its own. */
const WRITE_LANES = 4;
/** A's writes: one in five a delete. */
const WRITES = { keys: KEYS, lanes: WRITE_LANES, deleteRatio: 0.2, ttl: TTL };
/** B and C: 4 loops of reads each, pausing 1 ms every 4 reads (the machine has 2 cores). */
const READS = { keys: KEYS, lanes: 4, pauseEvery: 4 };
/** The memory tier's cap while the bus is up (its default in front of shared tiers). */
const NORMAL_CAP = 5000;
const DEGRADED_TTL = 1000;

function configs(namespace: string, bus: BusWorkerConfig['bus']): BusWorkerConfig[] {
  return ['A', 'B', 'C'].map((name) => ({
    name,
    namespace,
    memcached: servers.memcached,
    cassandra: { ...servers.cassandra, keyspace },
    bus,
    // Only the bus can tell B and C of A's clear(): they would re-read the generation in 1 h.
    generationRefreshMs: 3_600_000,
  }));
}

/** A, B and C: forked once for every test (a store each per describe block), stopped after. */
const workers: BusWorker[] = [];
let a: BusWorker, b: BusWorker, c: BusWorker;
beforeAll(async () => {
  await Promise.all(
    ['A', 'B', 'C'].map(async (name) => {
      const w = await BusWorker.start(name);
      workers.push(w); // at once: afterAll stops whatever started
    }),
  );
  workers.sort((x, y) => x.name.localeCompare(y.name));
  [a, b, c] = workers;
}, 120_000);
afterAll(() => Promise.all(workers.map((w) => w.close())), 60_000);

/** Opens the stores of A, B and C (one namespace, `bus`) and waits until their bus is up. */
async function openStores(namespace: string, bus: BusWorkerConfig['bus']): Promise<void> {
  const all = configs(namespace, bus);
  await Promise.all(workers.map((w, i) => w.request({ op: 'open', config: all[i] })));
  expect(await allUp(workers)).toBe(true);
}

const closeStores = () => Promise.allSettled(workers.map((w) => w.request({ op: 'close' })));

const states = (ws: BusWorker[]) => Promise.all(ws.map((w) => w.state()));

/** Every caller error of `s`, for a readable failure. */
const errorsOf = (s: WorkerState[]) =>
  s.flatMap((x) => x.callerErrorMessages.map((m) => `${x.name}: ${m}`));

const ms = (v: number) => v.toFixed(1);

/** Delivery times and stale reads of several readers, for the printed line. */
function figures(results: ReaderAnalysis[]): string {
  const all = results.flatMap((r) => r.delivery);
  const stale = results.flatMap((r) => r.stale);
  const afterDelete = stale.filter((x) => x.mustSee.del).length;
  const within = results.reduce((n, r) => n + r.staleWithinDelivery, 0);
  const spread = (xs: number[]) =>
    `p50 ${ms(quantile(xs, 0.5))} / p99 ${ms(quantile(xs, 0.99))} / max ${ms(quantile(xs, 1))} ms`;
  return (
    `delivery ${spread(all)} (n=${all.length}): ` +
    `in the writer before its publish ${spread(results.flatMap((r) => r.queued))}, ` +
    `publish to receipt ${spread(results.flatMap((r) => r.hop))}; ` +
    `stale beyond delivery ${stale.length} (${afterDelete} after a delete); stale within delivery ${within}`
  );
}

/** What every reader must show: every write delivered, nothing stale beyond its delivery. */
function expectCoherent(results: ReaderAnalysis[], writes: WriteLog): void {
  for (const r of results) {
    expect(r.reads).toBeGreaterThan(0);
    expect(r.delivery).toHaveLength(writes.key.length);
    expect({ undelivered: r.undelivered, misdelivered: r.misdelivered }).toEqual({
      undelivered: 0,
      misdelivered: 0,
    });
    expect(r.wrongValues).toBe(0);
    const described = r.stale.map((x) => {
      const write = `the ${x.mustSee.del ? 'delete' : 'set'} numbered ${x.mustSee.version}`;
      const when = Number.isFinite(x.mustSee.recv)
        ? `${ms(x.start - x.mustSee.recv)} ms after ${write} was delivered`
        : `after ${write}, made before this phase`;
      return `k${x.key}: read ${x.value === -1 ? 'nothing' : `version ${x.value}`} ${when}`;
    });
    expect({ stale: r.stale.length, first: described.slice(0, 5) }).toEqual({
      stale: 0,
      first: [],
    });
  }
}

/**
 * Waits until `check` says ok; on timeout, fails saying what it last saw (`check` answers
 * `[ok, what]`).
 */
async function waitFor(what: string, check: () => Promise<[boolean, unknown]>, ms: number) {
  let seen: unknown;
  const ok = await eventually(async () => {
    const [done, now] = await check();
    seen = now;
    return done;
  }, ms);
  if (!ok) throw new Error(`${what}: not within ${ms} ms; last seen ${JSON.stringify(seen)}`);
}

describe('invalidation bus across 3 processes (shared memcached, Cassandra and Redis)', () => {
  beforeAll(
    () => openStores(uniqueName('busproc'), { type: 'redis', url: servers.redis.url }),
    60_000,
  );
  afterAll(closeStores, 60_000);

  it('A writes and deletes 10,000 times while B and C read: every message arrives, no read is stale beyond its delivery', async () => {
    await Promise.all([b, c].map((w) => w.request({ op: 'startReads', ...READS })));
    const t0 = performance.now();
    await a.request({
      op: 'startWrites',
      ...WRITES,
      ops: 10_000,
      firstVersion: 1,
    });
    const writes = await a.request<WriteLog>({ op: 'endWrites', stop: false });
    const elapsed = performance.now() - t0;
    expect(writes.key).toHaveLength(10_000);
    expect(await caughtUp([b, c], Math.max(...writes.seq))).toBe(true);
    const reads = await Promise.all([b, c].map((w) => w.request<ReadLog>({ op: 'stopReads' })));
    const [sa, sb, sc] = await states(workers);
    const results = reads.map((r) => analyse(writes, r));

    const deletes = writes.del.filter((d) => d === 1).length;
    const hitRatio = (s: WorkerState) => (100 * s.memory.hits) / (s.memory.hits + s.memory.misses);
    console.log(
      `bus across processes: ${writes.key.length} writes (${deletes} deletes) over ${KEYS} keys in ${(elapsed / 1000).toFixed(1)} s; ` +
        `reads B ${results[0].reads} C ${results[1].reads} (memory hits ${hitRatio(sb).toFixed(0)}% / ${hitRatio(sc).toFixed(0)}%); ` +
        `${figures(results)}; ` +
        `tier errors ${sa.tierErrors + sb.tierErrors + sc.tierErrors}; ` +
        `event loop delay p99 A ${ms(sa.loopDelay.p99)} B ${ms(sb.loopDelay.p99)} C ${ms(sc.loopDelay.p99)} ms`,
    );

    expect(errorsOf([sa, sb, sc])).toEqual([]);
    expect(sa.bus).toMatchObject({ publishFailed: 0, dropped: 0, inFlight: 0 });
    expect(sa.bus!.published).toBe(sa.seq);
    for (const s of [sb, sc]) {
      // A is the only writer: what B and C received is exactly what A published.
      expect(s.bus).toMatchObject({ up: true, published: 0, gaps: 0, invalid: 0 });
      expect(s.bus!.received).toBe(sa.bus!.published);
      expect(s.memory.hits).toBeGreaterThan(0); // they did hold the keys in memory
    }
    expectCoherent(results, writes);
  }, 180_000);

  it('clear() in A: B and C take its generation when its message arrives, and drop what they held', async () => {
    await Promise.all([b, c].map((w) => w.request({ op: 'stopReads' }))); // if the test before failed
    const keys = Array.from({ length: 20 }, (_, i) => `held${i}`);
    const set = await a.request<{ seq: number }>({
      op: 'set',
      entries: keys.map((k) => [k, k]),
      ttl: TTL,
    });
    expect(await caughtUp([b, c], set.seq)).toBe(true);
    type Got = { values: unknown[]; memoryHits: number };
    for (const w of [b, c]) {
      expect((await w.request<Got>({ op: 'get', keys })).values).toEqual(keys);
      // Now from memory: they hold the keys.
      expect(await w.request<Got>({ op: 'get', keys })).toEqual({ values: keys, memoryHits: 20 });
    }
    const before = await states([a, b, c]);
    const cleared = await a.request<{ generation: number; done: number; seq: number }>({
      op: 'clear',
    });
    expect(cleared.generation).toBeGreaterThan(before[0].generation);
    for (const s of before) expect(s.generation).toBe(before[0].generation);

    expect(await caughtUp([b, c], cleared.seq)).toBe(true);
    const after = await states([a, b, c]);
    const seenAfter: number[] = [];
    for (const s of after.slice(1)) {
      expect(s.generation).toBe(cleared.generation);
      const receipt = s.clears.find((r) => r.seq === cleared.seq);
      expect(receipt).toMatchObject({
        generation: cleared.generation,
        storeGeneration: cleared.generation, // taken as the message arrived
      });
      // Its memory tier was emptied then (with the 20 keys in it).
      const flush = s.memoryClears.at(-1)!;
      expect(flush.at).toBeLessThanOrEqual(receipt!.recv);
      expect(flush.sizeBefore).toBeGreaterThanOrEqual(20);
      expect(s.bus!.gaps).toBe(0);
      seenAfter.push(receipt!.recv - cleared.done);
    }
    for (const w of [b, c])
      expect((await w.request<Got>({ op: 'get', keys })).values).toEqual(keys.map(() => null));
    expect(errorsOf(after)).toEqual([]);
    console.log(
      `clear() across processes: generation ${before[0].generation} -> ${cleared.generation}, ` +
        `taken by B ${ms(seenAfter[0])} ms and C ${ms(seenAfter[1])} ms after A's clear() resolved`,
    );
  }, 60_000);
});

describe('invalidation bus across 3 processes: Redis SIGKILLed mid-run, then restarted', () => {
  // A Redis of this test's own: the shared one is not killed.
  const redisBed = new RedisTestbed();
  let node: RedisNode;

  beforeAll(async () => {
    node = await redisBed.node();
    await openStores(uniqueName('buskill'), {
      type: 'redis',
      url: node.url,
      degradedTtl: DEGRADED_TTL,
    });
  }, 60_000);

  afterAll(async () => {
    await closeStores();
    await redisBed.close();
  }, 60_000);

  it('no caller error; B and C flush and cap memory at degradedTtl while down; the bus resumes by itself, the normal cap returns, no stale read after', async () => {
    const readers = [b, c];
    const opsOf = async (w: BusWorker) => (await w.state()).opsDone;
    await Promise.all(readers.map((w) => w.request({ op: 'startReads', ...READS })));
    await a.request({
      op: 'startWrites',
      ...WRITES,
      ops: 0, // until stopped
      firstVersion: 1,
    });
    await waitFor(
      'A writing',
      async () => {
        const ops = await opsOf(a);
        return [ops >= 500, { ops }];
      },
      30_000,
    );

    // Redis dies mid-run.
    const killedAt = performance.timeOrigin + performance.now();
    await killRedis(node);
    await waitFor(
      'the bus down in A, B and C',
      async () => {
        const up = (await states(workers)).map((s) => s.bus?.up);
        return [up.every((u) => u === false), { up }];
      },
      15_000,
    );
    const atDown = await states(workers);
    const downAt = atDown.map((s) => s.events.find((e) => e.type === 'down')!.at);
    // Writes and reads go on: A's publishes fail, B and C take entries in memory under the cap.
    const putsSince = async (w: BusWorker, from: number, to?: number) =>
      w.request<{ count: number; minTtl: number | null; maxTtl: number | null }>({
        op: 'memoryPuts',
        from,
        to,
      });
    const opsAtDown = atDown[0].opsDone;
    await waitFor(
      'writes and reads going on while down',
      async () => {
        const ops = (await opsOf(a)) - opsAtDown;
        const puts = await Promise.all(readers.map((w, i) => putsSince(w, downAt[i + 1])));
        return [ops >= 300 && puts.every((p) => p.count >= 50), { ops, puts }];
      },
      30_000,
    );

    // Back on the same port: the bus resumes by itself.
    await restartRedis(node);
    const restartedAt = performance.timeOrigin + performance.now();
    expect(await allUp(workers, 30_000)).toBe(true);
    const atUp = await states(workers);
    const upAt = atUp.map((s) => s.events.findLast((e) => e.type === 'up')!.at);
    // A's messages are taken again (its publishing connection is back too), and B and C take
    // entries in memory under the normal cap again.
    await waitFor(
      'the bus carrying messages again',
      async () => {
        const published = (await a.state()).bus!.published - atUp[0].bus!.published;
        const puts = await Promise.all(readers.map((w, i) => putsSince(w, upAt[i + 1])));
        return [published >= 200 && puts.every((p) => p.count >= 50), { published, puts }];
      },
      30_000,
    );
    const running = await a.request<WriteLog>({ op: 'endWrites', stop: true });
    await Promise.all(readers.map((w) => w.request({ op: 'stopReads' })));
    const settled = await states(workers);

    expect(errorsOf(settled)).toEqual([]);
    expect(settled[0].bus!.publishFailed + settled[0].bus!.dropped).toBeGreaterThan(0);
    const degraded: string[] = [];
    for (const [i, s] of settled.entries()) {
      // Down once Redis died, up again by itself: the last change of state is an `up`. (A `gap`
      // may follow: the publishes that failed while Redis was down spent their numbers.)
      const down = s.events.findIndex((e) => e.type === 'down');
      expect(down).toBeGreaterThan(0);
      const lastUp = s.events.filter((e) => e.type === 'up' || e.type === 'down').at(-1)!;
      expect(lastUp.type).toBe('up');
      if (i === 0) continue;
      const w = workers[i];
      const downEvent = s.events[down];
      const upEvent = s.events.slice(down).find((e) => e.type === 'up')!;
      expect(downEvent.message).toMatch(/local tiers flushed/);
      // Flushed as the bus went down: memory emptied right then, with entries in it.
      const flush = s.memoryClears.filter((f) => f.at <= downEvent.at).at(-1)!;
      expect(flush.sizeBefore).toBeGreaterThan(0);
      expect(downEvent.memorySize).toBe(0);
      // While down, every entry taken in memory lives at most degradedTtl…
      const whileDown = await putsSince(w, downEvent.at, upEvent.at);
      expect(whileDown.count).toBeGreaterThan(0);
      expect(whileDown.maxTtl).toBeLessThanOrEqual(DEGRADED_TTL);
      // …and once it is back, the normal cap again.
      const afterUp = await putsSince(w, lastUp.at);
      expect(afterUp.count).toBeGreaterThan(0);
      expect(afterUp.maxTtl).toBe(NORMAL_CAP);
      degraded.push(
        `${s.name} flushed ${flush.sizeBefore} entries, took ${whileDown.count} in while down ` +
          `(TTL <= ${whileDown.maxTtl} ms), ${afterUp.count} after (TTL <= ${afterUp.maxTtl} ms)`,
      );
    }

    // The writes so far have all landed: B and C must read what they left...
    const initial: Array<KeyState | undefined> = finalStates(running);
    const allKeys = Array.from({ length: KEYS }, (_, k) => `k${k}`);
    const expected = Array.from({ length: KEYS }, (_, k) =>
      initial[k] === undefined || initial[k].del ? null : initial[k].version,
    );
    const seam = await Promise.all(
      readers.map(async (w) => {
        const got = await w.request<{ values: unknown[] }>({ op: 'get', keys: allKeys });
        return got.values.flatMap((v, k) =>
          v === expected[k] ? [] : [`${w.name} k${k}: ${String(v)} for ${String(expected[k])}`],
        );
      }),
    );
    // ...and, in a further short phase, see every later write once delivered.
    const gapsBefore = settled.map((s) => s.bus!.gaps);
    await Promise.all(readers.map((w) => w.request({ op: 'startReads', ...READS })));
    await a.request({
      op: 'startWrites',
      ...WRITES,
      ops: 2000,
      firstVersion: Math.max(...running.version) + 1,
    });
    const further = await a.request<WriteLog>({ op: 'endWrites', stop: false });
    expect(await caughtUp(readers, Math.max(...further.seq))).toBe(true);
    const reads = await Promise.all(readers.map((w) => w.request<ReadLog>({ op: 'stopReads' })));
    const final = await states(workers);
    const results = reads.map((r) => analyse(further, r, initial));

    const [sa] = final;
    console.log(
      `bus across processes, Redis SIGKILLed mid-run: A wrote ${running.key.length} times until stopped ` +
        `(${sa.bus!.publishFailed} publishes failed), ${errorsOf(settled).length} caller errors; ` +
        `bus down in A, B and C ${ms(Math.max(...downAt) - killedAt)} ms after the kill; ${degraded.join('; ')}; ` +
        `up again by itself ${ms(Math.max(...upAt) - restartedAt)} ms after the restart; ` +
        `read back after: ${seam.flat().length} wrong of ${2 * KEYS}; then ${further.key.length} writes, ` +
        `reads B ${results[0].reads} C ${results[1].reads}, ${figures(results)}`,
    );
    expect(seam.flat()).toEqual([]);
    expect(errorsOf(final)).toEqual([]);
    expect(final.map((s, i) => s.bus!.gaps - gapsBefore[i])).toEqual([0, 0, 0]);
    expect(final.every((s) => s.bus!.up)).toBe(true);
    expectCoherent(results, further);
  }, 180_000);
});
