import { setTimeout as sleep } from 'node:timers/promises';
import type { CacheStatus, TagMode } from '../../lib';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import { eventually } from '../support/eventually';
import {
  TagsWorker,
  sumCalls,
  type KeySpec,
  type LookupResult,
  type ReadResult,
  type TagsWorkerConfig,
} from '../support/tags-processes';

/**
 * Tags across 3 Node processes, each a TieredCache over memory, memcached and Cassandra (the
 * authority holding tag times), on the harness's real servers; with a Redis bus, and without.
 *
 * - Every process warms 12 tagged keys through getOrSet: one origin call per key in the cluster.
 * - Process 0 invalidates one tag (`g0`: 4 of the keys, each with a second tag it shares with
 *   keys that stay). Process 0 at once, and the others once told (the bus) or once
 *   `tagRefreshMs` has passed (no bus), return no value written before it through get, getMany,
 *   has or getOrSet; the other keys are untouched.
 * - `delete`: getOrSet recomputes each invalidated key once in the cluster.
 * - `expire` (with grace): concurrent getOrSet calls in all 3 processes answer the old value as
 *   STALE while one process in the cluster refreshes each key (its origin held until every
 *   process has answered); then the new value is served, the origin called once per key.
 *
 * Without a bus each process runs on a ManualClock, all moved in step by the spec (one clock for
 * the cluster): the bound is checked exactly, by advancing them `tagRefreshMs`.
 */
const servers = testServers();
const keyspace = uniqueName('tagsproc').toLowerCase();
dropKeyspaceAfterAll(keyspace);

const PROCESSES = 3;
const TTL = 600_000;
const GRACE = 600_000;
const TAG_REFRESH_MS = 1500;
const T0 = 1_700_000_000_000;
/** Key i carries tags g<i % 3> and h<i % 2>; g0 is invalidated. */
const KEYS: KeySpec[] = Array.from({ length: 12 }, (_, i) => ({
  key: `k${i}`,
  tags: [`g${i % 3}`, `h${i % 2}`],
}));
const TAG = 'g0';
const COVERED = KEYS.filter((k) => k.tags.includes(TAG)).map((k) => k.key);
const ALL = KEYS.map((k) => k.key);

/** What each key should read as: version 1 (or `version` for the covered ones; none: a miss). */
function expected(coveredVersion: number | undefined): Array<number | undefined> {
  return ALL.map((k) => (COVERED.includes(k) ? coveredVersion : 1));
}

/** The reads of one process that differ from `want` (versions; undefined: a miss). */
function wrongReads(worker: string, r: ReadResult, want: Array<number | undefined>): string[] {
  const wrong: string[] = [];
  ALL.forEach((key, i) => {
    const w = want[i];
    if (r.get[i]?.v !== w)
      wrong.push(`${worker}.get(${key}): ${JSON.stringify(r.get[i])}, want v${w}`);
    if (r.getMany[i]?.v !== w)
      wrong.push(`${worker}.getMany(${key}): ${JSON.stringify(r.getMany[i])}, want v${w}`);
    if (r.has[i] !== (w !== undefined))
      wrong.push(`${worker}.has(${key}): ${r.has[i]}, want ${w !== undefined}`);
    for (const path of ['mget', 'keyv', 'cacheManager'] as const)
      if (r[path][i]?.v !== w)
        wrong.push(`${worker}.${path}(${key}): ${JSON.stringify(r[path][i])}, want v${w}`);
    // A @Cached read of a miss computes (version -1, not stored).
    for (const path of ['cachedMethod', 'cachedHandler'] as const) {
      const got = r[path]?.[i];
      if (got !== undefined && got.v !== (w ?? -1))
        wrong.push(`${worker}.${path}(${key}): ${JSON.stringify(got)}, want v${w ?? -1}`);
    }
    if (r.get[i] !== null && r.get[i]!.key !== key) wrong.push(`${worker}.get(${key}): wrong key`);
  });
  return wrong;
}

/** The answers of lookups that differ from `want(key)`: one of its statuses, its version. */
function wrongLookups(
  worker: string,
  result: LookupResult,
  want: (key: string) => { status: CacheStatus[]; v: number },
): string[] {
  const wrong: string[] = [];
  for (const [key, answers] of Object.entries(result)) {
    const w = want(key);
    for (const a of answers)
      if (!w.status.includes(a.status) || a.value.v !== w.v || a.value.key !== key)
        wrong.push(
          `${worker}.getOrSet(${key}): ${a.status} ${JSON.stringify(a.value)}, want ${w.status.join('|')} v${w.v}`,
        );
  }
  return wrong;
}

describe('tags across 3 processes (memory, memcached, Cassandra; real servers)', () => {
  let workers: TagsWorker[] = [];

  beforeAll(async () => {
    workers = await TagsWorker.start(PROCESSES);
  }, 120_000);

  afterEach(async () => {
    await Promise.all(workers.map((w) => w.close().catch(() => undefined)));
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.exit()));
  });

  /**
   * Every worker's reads, concurrently, checked against `want`; with `cached`, `@Cached` methods
   * and handlers too (not where entries are stale: they would serve and refresh them).
   */
  async function readAll(
    want: Array<number | undefined>,
    only = workers,
    cached = false,
  ): Promise<string[]> {
    const reads = await Promise.all(only.map((w) => w.read(ALL, cached)));
    return reads.flatMap((r, i) => wrongReads(only[i].name, r, want));
  }

  async function lookupAll(options: {
    callers: number;
    version: number;
    gate?: boolean;
    hardTimeout?: number;
  }): Promise<LookupResult[]> {
    return Promise.all(
      workers.map((w) => w.lookup({ keys: KEYS, ttl: TTL, grace: GRACE, ...options })),
    );
  }

  /** Origin calls per key, summed over the processes (and counted afresh from here). */
  async function clusterCalls(): Promise<Record<string, number>> {
    return sumCalls(await Promise.all(workers.map((w) => w.calls(true))), ALL);
  }

  /** The bus: every process has heard every message the others published. */
  async function quiet(): Promise<void> {
    const ok = await eventually(async () => {
      const states = await Promise.all(workers.map((w) => w.state()));
      return states.every((s, i) => {
        const others = states.filter((_, j) => j !== i);
        return (
          others.every((o) => o.bus!.inFlight === 0 && o.bus!.pending === 0) &&
          s.bus!.received >= others.reduce((n, o) => n + o.bus!.published, 0)
        );
      });
    }, 30_000);
    expect(ok).toBe(true);
  }

  /**
   * Opens a cache in every process, warms every key (one origin call per key in the cluster),
   * lets each process read them all (its memory tier holds them, and it knows their tags'
   * times), then process 0 invalidates TAG in `mode`. Resolves once every process must see it.
   */
  async function warmAndInvalidate(mode: TagMode, bus: boolean): Promise<void> {
    const config: TagsWorkerConfig = {
      namespace: uniqueName('tp'),
      memcached: servers.memcached,
      cassandra: { ...servers.cassandra, keyspace },
      busUrl: bus ? servers.redis.url : undefined,
      tagRefreshMs: TAG_REFRESH_MS,
      manualClock: bus ? undefined : T0,
    };
    await Promise.all(workers.map((w) => w.open(config)));
    if (bus) {
      const up = await eventually(
        async () => (await Promise.all(workers.map((w) => w.state()))).every((s) => s.bus?.up),
        30_000,
      );
      expect(up).toBe(true);
    }

    const warm = await lookupAll({ callers: 5, version: 1 });
    const warmWrong = warm.flatMap((r, i) =>
      wrongLookups(workers[i].name, r, () => ({ status: ['MISS', 'HIT'], v: 1 })),
    );
    expect(warmWrong).toEqual([]);
    expect(await clusterCalls()).toEqual(Object.fromEntries(ALL.map((k) => [k, 1])));
    if (bus) await quiet();
    else await Promise.all(workers.map((w) => w.advance(1))); // the invalidation comes later
    expect(await readAll(expected(1), workers, true)).toEqual([]);

    await workers[0].invalidate([TAG], mode);
    // Process 0, at once.
    expect(await readAll(expected(undefined), [workers[0]], mode === 'delete')).toEqual([]);
    if (bus) {
      // The others, once their bus has brought the message.
      const told = await eventually(async () => {
        const states = await Promise.all(workers.slice(1).map((w) => w.state()));
        return states.every((s) => s.tagMessages.some((t) => t.tag === TAG && t.mode === mode));
      }, 30_000);
      expect(told).toBe(true);
      // Clocks count milliseconds: what is computed from here on is stamped after it, not in
      // its millisecond (a write and another instance's invalidation in one millisecond count
      // as the write first).
      await sleep(5);
    } else {
      // The others, once tagRefreshMs has passed since they read the tag's times.
      await Promise.all(workers.map((w) => w.advance(TAG_REFRESH_MS)));
    }
    expect(await readAll(expected(undefined), workers, mode === 'delete')).toEqual([]);
  }

  describe.each([
    ['bus', true],
    ['no bus (ManualClocks in step)', false],
  ] as const)('%s', (_name, bus) => {
    it("delete: no process returns an invalidated key's old value on any path; getOrSet recomputes it once in the cluster", async () => {
      await warmAndInvalidate('delete', bus);
      const answers = await lookupAll({ callers: 3, version: 2 });
      // Invalidated keys: the new value, computed here (MISS) or by another process (HIT).
      const wrong = answers.flatMap((r, i) =>
        wrongLookups(workers[i].name, r, (key) =>
          COVERED.includes(key) ? { status: ['MISS', 'HIT'], v: 2 } : { status: ['HIT'], v: 1 },
        ),
      );
      expect(wrong).toEqual([]);
      expect(await clusterCalls()).toEqual(
        Object.fromEntries(ALL.map((k) => [k, COVERED.includes(k) ? 1 : 0])),
      );
      // Written after the invalidation: fresh everywhere.
      expect(await readAll(expected(2))).toEqual([]);
    }, 60_000);

    it('expire: every process serves the old value as STALE while one refreshes each key; then the new value, one origin call per key', async () => {
      await warmAndInvalidate('expire', bus);
      // The refreshes are held at the origin until every process has answered. (A caller with
      // no stale value to answer would wait for the origin: it fails after hardTimeout instead.)
      const burst = await lookupAll({ callers: 5, version: 2, gate: true, hardTimeout: 15_000 });
      const wrong = burst.flatMap((r, i) =>
        wrongLookups(workers[i].name, r, (key) =>
          COVERED.includes(key) ? { status: ['STALE'], v: 1 } : { status: ['HIT'], v: 1 },
        ),
      );
      expect(wrong).toEqual([]);
      await Promise.all(workers.map((w) => w.release()));
      // Then the refreshed value, in every process.
      const covered = KEYS.filter((k) => COVERED.includes(k.key));
      const served = await eventually(async () => {
        const r = await Promise.all(
          workers.map((w) =>
            w.lookup({ keys: covered, callers: 1, version: 3, ttl: TTL, grace: GRACE }),
          ),
        );
        return r.every((x) =>
          Object.values(x).every((a) => a[0].status === 'HIT' && a[0].value.v === 2),
        );
      }, 30_000);
      expect(served).toBe(true);
      expect(await clusterCalls()).toEqual(
        Object.fromEntries(ALL.map((k) => [k, COVERED.includes(k) ? 1 : 0])),
      );
      expect(await readAll(expected(2))).toEqual([]);
    }, 60_000);
  });
});
