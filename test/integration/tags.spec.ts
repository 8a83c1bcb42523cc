import 'reflect-metadata';
import { createCache, type Cache } from 'cache-manager';
import type { Keyv } from 'keyv';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CassandraTier,
  MemcachedTier,
  TieredCache,
  TieredCacheError,
  createTieredKeyv,
  createTieredStore,
  type BusEvent,
  type CacheStatus,
  type CassandraTierOptions,
  type MemcachedTierOptions,
  type TagMode,
  type Tier,
  type TierOptions,
  type TieredStore,
  type TieredStoreOptions,
} from '../../lib';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import { eventually } from '../support/eventually';
import { withFaults, type Operations } from '../support/fault-tier';
import { ManualClock } from '../support/manual-clock';

/**
 * Tags on real servers (memcached, Cassandra, Redis), one process: several stores over the same
 * servers and namespace stand for separate instances of an app ("A" invalidates, "B" is another
 * instance). test/integration/tags-processes.spec.ts runs them as separate processes.
 *
 * The guarantee checked, on every read path (get, getMany, has, getRecord, getOrSet through
 * TieredCache, Keyv's get, cache-manager's get and mget, and iterate where the farthest tier
 * lists its entries):
 * - once `invalidateTags` has resolved on A, A returns no value written before it under one of
 *   the tags (`delete`: a miss; `expire`: a miss for plain reads, stale for read-through within
 *   the entry's grace, refreshed once);
 * - another instance B does too: with a bus, as soon as B's bus has received A's message (B
 *   trusts the times it read for a minute while the bus is up, so nothing else can tell it);
 *   without a bus, once `tagRefreshMs` has passed on the clock since B last read the tag's times
 *   (the stores share a ManualClock, advanced by exactly `tagRefreshMs`);
 * - entries with other tags, or none, are untouched; an entry with several tags goes with any
 *   one of them; entries written after the invalidation are fresh.
 */
const servers = testServers();
const keyspace = uniqueName('tags').toLowerCase();
dropKeyspaceAfterAll(keyspace);

/** A memory cap far beyond what the tests advance the clock by: copies outlive every check. */
const MEMORY: TierOptions = { type: 'memory', ttl: 3_600_000 };
// Generous timeouts: the machine is busy, and one timeout opens a tier's circuit breaker, which
// stays open on a ManualClock.
const MEMCACHED: MemcachedTierOptions = {
  type: 'memcached',
  servers: servers.memcached,
  timeout: 5000,
};
const CASSANDRA: CassandraTierOptions = {
  type: 'cassandra',
  ...servers.cassandra,
  keyspace,
  timeout: 15_000,
};
const BUS = { type: 'redis' as const, url: servers.redis.url, timeout: 5000 };
/** Not the default (1000), so that the bound checked is the option's. */
const TAG_REFRESH_MS = 1500;
const TTL = 600_000;
const GRACE = 600_000;
/** The tag invalidated, and another (entries also carry tags `x` and `y`, shared by both). */
const TAG = 'product:7';
const OTHER = 'product:8';

interface Chain {
  name: string;
  tiers: TierOptions[];
  /** Name of the tier holding tag times (the farthest shared tier that counts). */
  authority?: 'memcached' | 'cassandra';
}

const CHAINS: Chain[] = [
  {
    name: 'memory, memcached, cassandra',
    tiers: [MEMORY, MEMCACHED, CASSANDRA],
    authority: 'cassandra',
  },
  { name: 'memory, memcached', tiers: [MEMORY, MEMCACHED], authority: 'memcached' },
  { name: 'memory, cassandra', tiers: [MEMORY, CASSANDRA], authority: 'cassandra' },
  { name: 'memcached', tiers: [MEMCACHED], authority: 'memcached' },
  { name: 'memory', tiers: [MEMORY] },
];
const SHARED = CHAINS.filter((c) => c.authority !== undefined);
const MEMORY_ONLY = CHAINS.find((c) => c.authority === undefined)!;

/** One entry of the data set: how it is written, its tags, whether invalidating TAG covers it. */
interface Seed {
  key: string;
  via: 'set' | 'setMany' | 'getOrSet';
  tags?: string[];
  covered: boolean;
}

/** The data set of group `g` (one group per instance that checks it with getOrSet). */
function seeds(g: string): Seed[] {
  return [
    { key: `${g}:one`, via: 'set', tags: [TAG], covered: true },
    { key: `${g}:several`, via: 'set', tags: ['x', TAG, 'y'], covered: true },
    { key: `${g}:many`, via: 'setMany', tags: [TAG], covered: true },
    { key: `${g}:other`, via: 'set', tags: [OTHER, 'x'], covered: false },
    { key: `${g}:untagged`, via: 'set', covered: false },
    { key: `${g}:rt`, via: 'getOrSet', tags: [TAG], covered: true },
    { key: `${g}:rt-other`, via: 'getOrSet', tags: [OTHER], covered: false },
  ];
}

/** Values carry their version: an "old" value is one of version 1. */
interface Value {
  key: string;
  v: number;
}
const value = (key: string, v: number): Value => ({ key, v });

interface Instance {
  name: string;
  store: TieredStore;
  cache: TieredCache;
  keyv: Keyv;
  manager: Cache;
  /** `bus` events received. */
  events: BusEvent[];
  /** `error` events (tier failures). */
  errors: Error[];
  /** Origin calls of getOrSet, per key. */
  calls: Map<string, number>;
  /** Whether its farthest tier lists its entries (`iterate` is then one more read path). */
  iterable: boolean;
}

const PATHS = [
  'get',
  'getMany',
  'has',
  'getRecord',
  'keyv',
  'cache-manager',
  'cache-manager mget',
  'iterate',
] as const;
type Path = (typeof PATHS)[number];

describe('tags on real servers (instances in one process)', () => {
  const open: Instance[] = [];
  /** Fault-injecting tiers: healed before their store disconnects (so that they close). */
  const faults: Array<{ heal(): unknown }> = [];
  let clock: ManualClock;
  let namespace: string;

  beforeEach(() => {
    clock = new ManualClock();
    namespace = uniqueName('tags');
  });

  afterEach(async () => {
    for (const f of faults.splice(0)) f.heal();
    await Promise.all(open.splice(0).map((i) => i.store.disconnect()));
  });

  /** The clock moves on (lru-cache reads it at most once per millisecond). */
  async function tick(ms: number): Promise<void> {
    clock.advance(ms);
    await sleep(5);
  }

  /** A connected store of this test's namespace (with its TieredCache, Keyv and cache-manager). */
  async function instance(
    name: string,
    tiers: Array<TierOptions | Tier<unknown>>,
    options: Partial<TieredStoreOptions> = {},
  ): Promise<Instance> {
    const store = createTieredStore({
      namespace,
      clock,
      tiers,
      tagRefreshMs: TAG_REFRESH_MS,
      ...options,
    });
    const keyv = createTieredKeyv(store);
    const i: Instance = {
      name,
      store,
      // Lease TTL far above anything a busy machine takes: one origin call per key.
      cache: new TieredCache(store, { clock, herd: { lockTimeout: 30_000 } }),
      keyv,
      manager: createCache({ stores: [keyv] }),
      events: [],
      errors: [],
      calls: new Map(),
      // Tier objects here are fault-injecting wrappers: not listed (they may fail every call).
      iterable:
        tiers.every((t) => !('capabilities' in t)) &&
        (tiers.at(-1) as TierOptions).type !== 'memcached',
    };
    open.push(i);
    store.on('error', (err: Error) => i.errors.push(err));
    store.on('bus', (e: BusEvent) => i.events.push(e));
    await store.connect();
    if (options.bus !== undefined)
      expect(await eventually(() => store.busStats()?.up === true, 20_000)).toBe(true);
    return i;
  }

  /** Writes the seeds, version 1, through `i` (read-through ones through its getOrSet). */
  async function seed(i: Instance, list: Seed[]): Promise<void> {
    for (const s of list.filter((s) => s.via === 'set'))
      await i.store.set(s.key, value(s.key, 1), s.tags ? { ttl: TTL, tags: s.tags } : TTL);
    const many = list.filter((s) => s.via === 'setMany');
    // (Not with none: setMany([]) rejects with E_NOT_ACCEPTED, "no tier accepted the write".)
    if (many.length > 0)
      await i.store.setMany(
        many.map((s) => ({ key: s.key, value: value(s.key, 1), ttl: TTL, tags: s.tags })),
      );
    for (const s of list.filter((s) => s.via === 'getOrSet')) {
      const got = await lookup(i, s, 1);
      expect(got).toMatchObject({ status: 'MISS', value: value(s.key, 1) });
    }
  }

  /** getOrSet (as `lookup`, with its status) of a seed; the origin answers version `v`. */
  function lookup(i: Instance, s: Seed, v: number) {
    return i.cache.lookup(
      s.key,
      () => {
        i.calls.set(s.key, (i.calls.get(s.key) ?? 0) + 1);
        return value(s.key, v);
      },
      { ttl: TTL, grace: GRACE, tags: s.tags },
    );
  }

  /** What each non-mutating read path of `i` returns for `keys` (`has`: the boolean). */
  async function readPaths(i: Instance, keys: string[]): Promise<Record<Path, unknown[]>> {
    const out = {} as Record<Path, unknown[]>;
    const each = async (read: (key: string) => Promise<unknown>) => {
      const values: unknown[] = [];
      for (const key of keys) values.push(await read(key));
      return values;
    };
    out.get = await each((k) => i.store.get(k));
    out.getMany = await i.store.getMany(keys);
    out.has = await each((k) => i.store.has(k));
    out.getRecord = await each(async (k) => (await i.store.getRecord(k))?.value);
    out.keyv = await each((k) => i.keyv.get(k));
    out['cache-manager'] = await each((k) => i.manager.get(k));
    out['cache-manager mget'] = await i.manager.mget(keys);
    if (i.iterable) {
      const listed = new Map<string, unknown>();
      for await (const [key, v] of i.store.iterate()) listed.set(key, v);
      out.iterate = keys.map((k) => listed.get(k));
    }
    return out;
  }

  /**
   * The reads of `i` that differ from `expected` (the value each key must have, `undefined` for
   * a miss), one line each: `[] ` when every path of every key is right.
   */
  async function wrongReads(
    i: Instance,
    expected: Array<[key: string, value: Value | undefined]>,
  ): Promise<string[]> {
    const keys = expected.map(([k]) => k);
    const seen = await readPaths(i, keys);
    const wrong: string[] = [];
    for (const path of PATHS) {
      if (seen[path] === undefined) continue; // iterate, where the farthest tier cannot list
      expected.forEach(([key, want], j) => {
        const got = seen[path][j];
        const ok = path === 'has' ? got === (want !== undefined) : sameValue(got, want);
        if (!ok)
          wrong.push(
            `${i.name}.${path}(${key}): ${JSON.stringify(got)}, expected ${JSON.stringify(path === 'has' ? want !== undefined : want)}`,
          );
      });
    }
    return wrong;
  }

  /**
   * What each seed must read as: version 1, or for those TAG's invalidation covers, `covered` (a
   * version; `undefined`: a miss).
   */
  function wanted(list: Seed[], covered: number | undefined): Array<[string, Value | undefined]> {
    return list.map((s) => [
      s.key,
      s.covered ? (covered === undefined ? undefined : value(s.key, covered)) : value(s.key, 1),
    ]);
  }

  /** Waits until `i`'s bus has brought it the invalidation of TAG in `mode`. */
  async function heard(i: Instance, mode: TagMode): Promise<void> {
    const ok = await eventually(
      () =>
        i.events.some(
          (e) =>
            e.type === 'invalidated' &&
            e.invalidation?.tags?.some((t) => t.tag === TAG && t.mode === mode) === true,
        ),
      20_000,
    );
    expect(ok).toBe(true);
  }

  /** Waits until `receiver` got every message `sender` published (so none lands mid-test). */
  async function caughtUp(sender: Instance, receiver: Instance): Promise<void> {
    await sleep(1);
    const ok = await eventually(() => {
      const sent = sender.store.busStats()!;
      return sent.inFlight === 0 && receiver.store.busStats()!.received >= sent.published;
    }, 20_000);
    expect(ok).toBe(true);
  }

  /**
   * The getOrSet phase on `i` over `list`, the origin answering version 2: what each call
   * answered, the origin calls made, and, in `expire` mode, the value served once the refreshes
   * of stale entries have landed.
   */
  async function checkGetOrSet(i: Instance, list: Seed[], mode: TagMode): Promise<void> {
    i.calls.clear();
    const answers: Array<[string, CacheStatus, unknown]> = [];
    for (const s of list) {
      const got = await lookup(i, s, 2);
      answers.push([s.key, got.status, got.value]);
    }
    const want = list.map((s): [string, CacheStatus, unknown] => {
      if (!s.covered) return [s.key, 'HIT', value(s.key, 1)];
      // expire: a read-through entry (it has a grace period) is stale, others are gone.
      if (mode === 'expire' && s.via === 'getOrSet') return [s.key, 'STALE', value(s.key, 1)];
      return [s.key, 'MISS', value(s.key, 2)];
    });
    expect(answers).toEqual(want);
    if (mode === 'expire') {
      // The stale entries are refreshed in the background, once: then the new value is served.
      for (const s of list.filter((s) => s.covered && s.via === 'getOrSet')) {
        const refreshed = await eventually(async () => {
          const got = await lookup(i, s, 3);
          return got.status === 'HIT' && sameValue(got.value, value(s.key, 2));
        }, 30_000);
        expect(refreshed).toBe(true);
      }
    }
    const calls = Object.fromEntries(list.map((s) => [s.key, i.calls.get(s.key) ?? 0]));
    expect(calls).toEqual(Object.fromEntries(list.map((s) => [s.key, s.covered ? 1 : 0])));
    // Written after the invalidation: fresh, on every read path.
    expect(await wrongReads(i, wanted(list, 2))).toEqual([]);
  }

  describe.each(['delete', 'expire'] as const)('mode %s', (mode) => {
    const variants = [
      ...SHARED.flatMap((chain) => [
        { chain, bus: true },
        { chain, bus: false },
      ]),
      { chain: MEMORY_ONLY, bus: true },
    ];

    it.each(variants.map((v) => [`${v.chain.name}, ${v.bus ? 'bus' : 'no bus'}`, v] as const))(
      '%s: no old value on A once invalidateTags resolved, nor on B once told; the rest untouched',
      async (_name, { chain, bus }) => {
        const options = bus ? { bus: BUS } : {};
        const a = await instance('A', chain.tiers, options);
        const b = await instance('B', chain.tiers, options);
        const shared = chain.authority !== undefined;
        // Shared tiers: A writes both groups; B reads them (its memory tier holds copies).
        // Memory only: each instance holds its own group (the bus is all they share).
        const groupA = seeds('a');
        const groupB = seeds('b');
        await seed(a, groupA);
        await seed(shared ? a : b, groupB);
        if (bus) {
          await caughtUp(a, b);
          await caughtUp(b, a);
        }
        const onA = shared ? [...groupA, ...groupB] : groupA;
        const onB = shared ? [...groupA, ...groupB] : groupB;
        await tick(1); // the invalidation comes a millisecond after every write
        // Before: every path sees version 1 on both (B now holds its tags' times, trusted for
        // tagRefreshMs without a bus, a minute with one), and getOrSet hits.
        expect(await wrongReads(a, wanted(onA, 1))).toEqual([]);
        expect(await wrongReads(b, wanted(onB, 1))).toEqual([]);
        for (const [i, list] of [
          [a, onA],
          [b, onB],
        ] as const) {
          i.calls.clear();
          for (const s of list) expect((await lookup(i, s, 9)).status).toBe('HIT');
          expect(i.calls.size).toBe(0);
        }

        await a.store.invalidateTags([TAG], { mode });
        // A, at once.
        expect(await wrongReads(a, wanted(onA, undefined))).toEqual([]);
        // B: told by the bus, or past tagRefreshMs since it read the tag's times.
        if (bus) await heard(b, mode);
        else await tick(TAG_REFRESH_MS);
        expect(await wrongReads(b, wanted(onB, undefined))).toEqual([]);

        // getOrSet: each instance over its own group (so that each computes its own).
        await tick(1); // computed a millisecond after the invalidation
        await checkGetOrSet(a, groupA, mode);
        await checkGetOrSet(b, groupB, mode);

        // Written again after the invalidation with set / setMany: fresh everywhere.
        const rewrite = (i: Instance, list: Seed[]) =>
          i.store.setMany(
            list
              .filter((s) => s.covered)
              .map((s) => ({ key: s.key, value: value(s.key, 3), ttl: TTL, tags: s.tags })),
          );
        await rewrite(a, groupA);
        expect(await wrongReads(a, wanted(groupA, 3))).toEqual([]);
        if (shared) {
          // B reads them from the shared tiers (its own copies are covered, or dropped by the bus).
          expect(await wrongReads(b, wanted(groupA, 3))).toEqual([]);
        } else {
          await rewrite(b, groupB);
          expect(await wrongReads(b, wanted(groupB, 3))).toEqual([]);
        }
      },
    );
  });

  it.each(SHARED.map((c) => [c.name, c] as const))(
    'without a bus, %s: B may serve old values until tagRefreshMs has passed since it read the times, none from then on',
    async (_name, chain) => {
      const a = await instance('A', chain.tiers);
      const b = await instance('B', chain.tiers);
      const list = seeds('k').filter((s) => s.via !== 'getOrSet');
      await seed(a, list);
      await tick(1);
      expect(await wrongReads(b, wanted(list, 1))).toEqual([]); // B reads TAG's times now
      await a.store.invalidateTags([TAG]);
      expect(await wrongReads(a, wanted(list, undefined))).toEqual([]);
      await tick(TAG_REFRESH_MS - 1);
      // Documents the bound (not a guarantee): B still trusts the times it read.
      expect(await b.store.get(list[0].key)).toEqual(value(list[0].key, 1));
      await tick(1);
      expect(await wrongReads(b, wanted(list, undefined))).toEqual([]);
    },
  );

  it.each([
    ['memory, memcached, cassandra', CHAINS[0]],
    ['memory only', MEMORY_ONLY],
  ] as const)(
    '%s, bus: an invalidation in one namespace leaves another namespace alone',
    async (_name, chain) => {
      const ns1 = namespace;
      const ns2 = uniqueName('tags2');
      const a1 = await instance('A1', chain.tiers, { bus: BUS });
      const b1 = await instance('B1', chain.tiers, { bus: BUS });
      namespace = ns2;
      const a2 = await instance('A2', chain.tiers, { bus: BUS });
      const b2 = await instance('B2', chain.tiers, { bus: BUS });
      namespace = ns1;
      const shared = chain.authority !== undefined;
      const plain = (g: string) => seeds(g).filter((s) => s.via !== 'getOrSet');
      // The same keys, tags and values in both namespaces. Shared tiers: A writes, both read.
      // Memory only: each instance holds a group of its own (one's writes drop the other's
      // copies of the same keys through the bus).
      const groups = new Map<Instance, Seed[]>(
        shared
          ? [a1, b1, a2, b2].map((i) => [i, plain('k')])
          : [
              [a1, plain('a')],
              [b1, plain('b')],
              [a2, plain('a')],
              [b2, plain('b')],
            ],
      );
      for (const i of shared ? [a1, a2] : [a1, b1, a2, b2]) await seed(i, groups.get(i)!);
      for (const [x, y] of [
        [a1, b1],
        [b1, a1],
        [a2, b2],
        [b2, a2],
      ])
        await caughtUp(x, y);
      await tick(1);
      for (const [i, list] of groups) expect(await wrongReads(i, wanted(list, 1))).toEqual([]);
      await a1.store.invalidateTags([TAG]);
      await heard(b1, 'delete');
      expect(await wrongReads(a1, wanted(groups.get(a1)!, undefined))).toEqual([]);
      expect(await wrongReads(b1, wanted(groups.get(b1)!, undefined))).toEqual([]);
      // Past any trust in cached times (a minute with the bus up): the other namespace reads
      // them again, and is untouched; its bus never carried the invalidation.
      await tick(60_000 + TAG_REFRESH_MS);
      for (const i of [a2, b2]) {
        expect(await wrongReads(i, wanted(groups.get(i)!, 1))).toEqual([]);
        expect(i.events.filter((e) => e.invalidation?.tags !== undefined)).toEqual([]);
      }
    },
  );

  describe('the authority cannot store the invalidation', () => {
    const cases = SHARED.flatMap((chain) => [
      // The tag times are written with raise (entries with set): only the invalidation fails,
      // the entries stay readable and writable there.
      { chain, fail: 'raise' as Operations, what: 'its raise fails' },
      // Everything failing: only meaningful where another tier still holds the entries.
      ...(chain.tiers.length > 1
        ? [{ chain, fail: '*' as Operations, what: 'every call fails' }]
        : []),
    ]);

    it.each(cases.map((c) => [c.chain.name, c.what, c] as const))(
      '%s, %s: invalidateTags rejects with E_TIER_FAILED naming it; A still applies it',
      async (_name, _what, { chain, fail }) => {
        const real = (): Tier<unknown> =>
          chain.authority === 'cassandra'
            ? new CassandraTier(CASSANDRA, { clock })
            : new MemcachedTier(MEMCACHED, { clock });
        const authority = withFaults(real());
        faults.push(authority);
        const tiers = chain.tiers.map((t) => (t.type === chain.authority ? authority : t)) as Array<
          TierOptions | Tier<unknown>
        >;
        const a = await instance('A', tiers);
        const list = seeds('k');
        await seed(a, list);
        await tick(1);
        expect(await wrongReads(a, wanted(list, 1))).toEqual([]);
        authority.fail(fail);

        const err = await a.store.invalidateTags([TAG]).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(TieredCacheError);
        expect(err).toMatchObject({ code: 'E_TIER_FAILED' });
        expect((err as Error).message).toContain(
          `invalidateTags(${JSON.stringify(TAG)}): ${chain.authority}, which holds tag times, could not store the invalidation`,
        );
        // This instance applies it all the same: on every path, and getOrSet recomputes.
        expect(await wrongReads(a, wanted(list, undefined))).toEqual([]);
        await tick(TAG_REFRESH_MS); // and still once the times are asked of the authority again
        expect(await wrongReads(a, wanted(list, undefined))).toEqual([]);
        await tick(1);
        await checkGetOrSet(a, list, 'delete');
      },
    );
  });

  it.each([
    ['memory, memcached, no bus', CHAINS[1], false],
    ['memory only, bus', MEMORY_ONLY, true],
  ] as const)(
    '%s: tagged writes on B and an invalidation on A in one millisecond count as the writes first (covered)',
    async (_name, chain, bus) => {
      // TagTimes.stamp: between stores, a write and an invalidation in one millisecond count as
      // the write first (the entry is covered). The clock does not move in this test: every
      // write and the invalidation happen in one millisecond, the writes first; B stamps three
      // entries (fractions 0, 1/1024, 2/1024 of that millisecond), A's invalidation is A's first.
      const options = bus ? { bus: BUS } : {};
      const a = await instance('A', chain.tiers, options);
      const b = await instance('B', chain.tiers, options);
      const list = [1, 2, 3].map((n): Seed => ({
        key: `w${n}`,
        via: 'set',
        tags: [TAG],
        covered: true,
      }));
      await seed(b, list);
      if (bus) await caughtUp(b, a);
      expect(await wrongReads(b, wanted(list, 1))).toEqual([]);
      await a.store.invalidateTags([TAG]);
      if (bus) await heard(b, 'delete');
      const reader = chain.authority === undefined ? b : a;
      expect(await wrongReads(reader, wanted(list, undefined))).toEqual([]);
    },
  );

  it('memory, memcached, no bus: two stores invalidate a tag in one millisecond, the one stored last had written an entry in between: covered for every store', async () => {
    // C invalidates (its time held on its way to the authority), then writes k; A invalidates
    // (stored); then C's time lands, over A's. Both times are T (each store's first stamp in
    // that millisecond), by different stores. k was written before A's invalidateTags
    // resolved: once every store has read the times again, none may return it.
    const cTier = withFaults(new MemcachedTier(MEMCACHED, { clock }));
    faults.push(cTier);
    const c = await instance('C', [MEMORY, cTier]);
    const a = await instance('A', CHAINS[1].tiers);
    const b = await instance('B', CHAINS[1].tiers);
    cTier.hang('raise'); // the tag time's write (entries are written with set)
    const cInvalidated = c.store.invalidateTags([TAG]);
    expect(await eventually(() => cTier.pending('raise') === 1, 10_000)).toBe(true);
    await c.store.set('k', value('k', 1), { ttl: TTL, tags: [TAG] });
    await a.store.invalidateTags([TAG]);
    cTier.release('raise');
    await cInvalidated;
    await tick(TAG_REFRESH_MS); // every store reads the times from the authority again
    const wrong: string[] = [];
    for (const i of [a, b, c]) wrong.push(...(await wrongReads(i, [['k', undefined]])));
    expect(wrong).toEqual([]);
  });

  it.each(SHARED.filter((c) => c.tiers.length === 2).map((c) => [c.name, c] as const))(
    '%s, no bus: an earlier invalidation whose time reaches the authority last does not undo a later one',
    async (_name, chain) => {
      // C invalidates at T (its write to the authority held up), k is written at T + 1, A
      // invalidates at T + 2 (stored, read back); then C's write of T lands. A's invalidateTags
      // resolved after k was written: once every store has read the times again, none may
      // return k, nor may a store started afterwards.
      const real = (): Tier<unknown> =>
        chain.authority === 'cassandra'
          ? new CassandraTier(CASSANDRA, { clock })
          : new MemcachedTier(MEMCACHED, { clock });
      const cTier = withFaults(real());
      faults.push(cTier);
      const c = await instance('C', [MEMORY, cTier]);
      const a = await instance('A', chain.tiers);
      const b = await instance('B', chain.tiers);
      cTier.hang('raise'); // the tag time's write (entries are written with set)
      const cInvalidated = c.store.invalidateTags([TAG]);
      expect(await eventually(() => cTier.pending('raise') === 1, 10_000)).toBe(true);
      await tick(1);
      await b.store.set('k', value('k', 1), { ttl: TTL, tags: [TAG] });
      await tick(1);
      await a.store.invalidateTags([TAG]);
      cTier.release('raise');
      await cInvalidated;
      await tick(TAG_REFRESH_MS); // every store reads the times from the authority again
      const d = await instance('D', chain.tiers);
      const wrong: string[] = [];
      for (const i of [a, b, c, d]) wrong.push(...(await wrongReads(i, [['k', undefined]])));
      expect(wrong).toEqual([]);
    },
  );

  it('counters cannot be tagged: increment and decrement reject with a TypeError, counting nothing', async () => {
    const a = await instance('A', CHAINS[0].tiers);
    const tagged = { ttl: TTL, tags: [TAG] } as never;
    await expect(a.store.increment('counter', 1, tagged)).rejects.toThrow(TypeError);
    await expect(a.store.decrement('counter', 1, tagged)).rejects.toThrow(TypeError);
    await expect(a.cache.increment('counter', 1, tagged)).rejects.toThrow(
      'counters cannot be tagged',
    );
    expect(await a.store.get('counter')).toBeUndefined();
    expect(await a.store.increment('counter', 2)).toBe(2); // untagged, it counts
  });
});

/** Whether two values are the same (plain JSON data). */
function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
