import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { BentoCache, bentostore } from 'bentocache';
import { types } from 'cassandra-driver';
import { memoryDriver } from 'bentocache/drivers/memory';
import { LRUCache } from 'lru-cache';
import { Codec, TieredCache, TieredStore, type TierOptions } from '../lib';
import { cassandraClient, connectedStore, memjsClient } from './contenders';
import { PRODUCT, productKeys } from './fixtures';
import { isolated, type IsolatedContender } from './isolated';
import { compare, fmt, load, stats, table, type Result } from './measure';
import type { BenchServers } from './servers';

/**
 * Tags (the issue's benchmark): what 3 tags cost a hit, against the same hit without tags, in one
 * run; and how long `invalidateTags` takes on each kind of authority (memcached, Cassandra),
 * beside a raw write to the same server.
 *
 * The goal: a tagged memory-tier hit (`store.get`, `getOrSet`) costs at most GOAL× an untagged
 * one. Cost ratios are time per operation, tagged / untagged, per round (both ran back to back in
 * it), and the median of the rounds is the figure; the spread is the rounds' min–max. A tagged
 * hit's tag times are known here ("warmed"): every tag was invalidated once before the entries
 * were written, so each check finds its tags in the local map, as a busy app's would.
 */
const GOAL = 1.3;
const KEYS = productKeys(1000);
const TTL = 10 * 60_000;
const ROUNDS = 15;
/** store.get hits per contender per round. */
const OPS = 200_000;

/** The 3 tags of `KEYS[i]`: its own, a shared one, one of 20 groups. */
const tagsOf = (i: number): string[] => [`product:${i}`, 'catalog', `brand:${i % 20}`];
const ALL_TAGS = [...new Set(KEYS.flatMap((_, i) => tagsOf(i)))];

/** A goal check: cost ratio tagged / untagged (time per op), median over paired rounds. */
interface CostRatio {
  label: string;
  tagged: string;
  untagged: string;
  /** Counted in the verdict (else printed for information). */
  goal: boolean;
}

interface Figure {
  label: string;
  median: number;
  min: number;
  max: number;
  goal: boolean;
}

const figures: Figure[] = [];

/** Memory-tier hits, getOrSet hits and a memcached hit, tagged vs not; `invalidateTags` on memcached. */
export async function tags(servers: BenchServers): Promise<boolean> {
  figures.length = 0;
  console.log(
    `\n# tags: 3 tags per entry (own, shared, one of 20), tag times known here; ${KEYS.length} keys read round-robin; cost ratio = time per op tagged / untagged, median of ${ROUNDS} alternated paired rounds [min–max]; goal ≤ ${GOAL}×`,
  );
  console.log(
    `  ${load()}; figures compare within this run only, and a busy machine widens the spread`,
  );
  await storeGetHit(servers);
  await getOrSetHit();
  await remoteHit(servers);
  console.log(`\n  ${load()}`);
  const ok = verdict();
  await invalidateOnMemcached(servers);
  return ok;
}

/**
 * `ops` sequential awaited calls of `call` over KEYS round-robin (a miss throws), with a turn of
 * the event loop after each pass over the keys, as a server has between requests: the store's
 * clock (`Date.now()` read at most once per ms, forgotten by a timer) moves on only then, and with
 * it the trust in tag times read from a remote tier. Without the turns a round runs on one
 * frozen clock reading.
 */
function hits(call: (key: string, i: number) => unknown): (ops: number) => Promise<void> {
  return async (ops) => {
    for (let i = 0; i < ops; i++) {
      const j = i % KEYS.length;
      if ((await call(KEYS[j], j)) === undefined) throw new Error('benchmark miss');
      if (j === KEYS.length - 1) await nextTurn();
    }
  };
}

// ---------------------------------------------------------------- memory-tier store.get

/** Invalidates every tag once (so their times are known here), then waits for the clock to move. */
async function invalidateAll(invalidate: (tags: string[]) => Promise<void>): Promise<void> {
  for (let i = 0; i < ALL_TAGS.length; i += 50) await invalidate(ALL_TAGS.slice(i, i + 50));
  // An entry written in the same millisecond as an invalidation of its tags is covered by it.
  await sleep(5);
}

async function storeGetHit(servers: BenchServers): Promise<void> {
  const lru = new LRUCache<string, object>({ max: 10_000 });
  for (const k of KEYS) lru.set(k, PRODUCT);
  const memoryOnly = (serialize: boolean): TierOptions[] => [{ type: 'memory', ttl: 0, serialize }];
  // In front of memcached (the authority), tag times live on memcached and are trusted here
  // `tagRefreshMs` (1 s, no bus): the first hit on an entry after its tags' trust ran out reads
  // them again (one memcached round trip, awaited by that hit). The memory tier keeps entries
  // (ttl 0) so that both sides measure memory hits, not the 5 s cap's re-reads.
  const withMemcached: TierOptions[] = [
    { type: 'memory', ttl: 0 },
    { type: 'memcached', servers: servers.memcached },
  ];
  const build = async (tiers: TierOptions[], tagged: boolean, ns: string) => {
    const store = new TieredStore({ namespace: `${ns}${process.pid}`, tiers });
    await store.connect({ failFast: true });
    if (tagged) await invalidateAll((t) => store.invalidateTags(t));
    for (const [i, k] of KEYS.entries())
      await store.set(k, PRODUCT, tagged ? { ttl: TTL, tags: tagsOf(i) } : { ttl: TTL });
    return store;
  };
  const stores = {
    copies: await build(memoryOnly(true), false, 'tgc'),
    copiesTagged: await build(memoryOnly(true), true, 'tgct'),
    refs: await build(memoryOnly(false), false, 'tgr'),
    refsTagged: await build(memoryOnly(false), true, 'tgrt'),
    remote: await build(withMemcached, false, 'tgm'),
    remoteTagged: await build(withMemcached, true, 'tgmt'),
  };
  const names = {
    lru: 'raw lru-cache get (awaited), reference',
    copies: 'copies (default), untagged',
    copiesTagged: 'copies (default), 3 tags',
    refs: 'serialize: false, untagged',
    refsTagged: 'serialize: false, 3 tags',
    remote: 'memory + memcached, untagged',
    remoteTagged: 'memory + memcached, 3 tags',
  };
  const remoteCalls = () => stores.remoteTagged.stats()[1].latency.count;
  const before = remoteCalls();
  const t0 = performance.now();
  const results = await compare(
    [
      { name: names.lru, run: hits((k) => lru.get(k)) },
      { name: names.copies, run: hits((k) => stores.copies.get(k)) },
      { name: names.copiesTagged, run: hits((k) => stores.copiesTagged.get(k)) },
      { name: names.refs, run: hits((k) => stores.refs.get(k)) },
      { name: names.refsTagged, run: hits((k) => stores.refsTagged.get(k)) },
      { name: names.remote, run: hits((k) => stores.remote.get(k)) },
      { name: names.remoteTagged, run: hits((k) => stores.remoteTagged.get(k)) },
    ],
    { ops: OPS, rounds: ROUNDS },
  );
  const reReads = remoteCalls() - before;
  const seconds = (performance.now() - t0) / 1000;
  table('memory-tier hit, store.get (one small object, sequential awaits)', results);
  ratios(results, [
    {
      label: 'store.get, copies (default)',
      tagged: names.copiesTagged,
      untagged: names.copies,
      goal: true,
    },
    {
      label: 'store.get, serialize: false',
      tagged: names.refsTagged,
      untagged: names.refs,
      goal: true,
    },
    {
      label: 'store.get, memory + memcached',
      tagged: names.remoteTagged,
      untagged: names.remote,
      goal: true,
    },
  ]);
  console.log(
    `  memory + memcached, 3 tags: ${fmt(reReads)} reads of tag times from memcached for ${fmt((ROUNDS + 0.25) * OPS)} hits, in the ${seconds.toFixed(1)} s of the comparison (each key's tags again once their 1 s of trust ran out)`,
  );
  ratios(results, [
    {
      label: 'untagged copies vs raw lru-cache (reference)',
      tagged: names.copies,
      untagged: names.lru,
      goal: false,
    },
  ]);
  await Promise.all(Object.values(stores).map((s) => s.disconnect()));
}

// ---------------------------------------------------------------- getOrSet

async function getOrSetHit(): Promise<void> {
  let computed = 0;
  const factory = () => {
    computed++;
    return PRODUCT;
  };
  const untaggedOptions = KEYS.map(() => ({ ttl: TTL }));
  const taggedOptions = KEYS.map((_, i) => ({ ttl: TTL, tags: tagsOf(i) }));
  const build = async (serialize: boolean, tagged: boolean) => {
    const options = { tiers: [{ type: 'memory' as const, ttl: 0, serialize }] };
    const cache = new TieredCache(new TieredStore(options), options);
    await cache.store.connect({ failFast: true });
    if (tagged) await invalidateAll((t) => cache.invalidateTags(t));
    const opts = tagged ? taggedOptions : untaggedOptions;
    for (const [i, k] of KEYS.entries()) await cache.getOrSet(k, factory, opts[i]);
    return cache;
  };
  const caches = {
    copies: await build(true, false),
    copiesTagged: await build(true, true),
    refs: await build(false, false),
    refsTagged: await build(false, true),
  };
  const bento = {
    untagged: bentoCache(`bu${process.pid}`),
    tagged: bentoCache(`bt${process.pid}`),
  };
  const bentoUntagged = KEYS.map((key) => ({ key, factory, ttl: '10m' }));
  const bentoTagged = KEYS.map((key, i) => ({ key, factory, ttl: '10m', tags: tagsOf(i) }));
  for (const o of bentoUntagged) await bento.untagged.getOrSet(o);
  // BentoCache keeps a tag's invalidation time as an entry of its own, read on every hit.
  await bento.tagged.deleteByTag({ tags: ALL_TAGS });
  await sleep(5);
  for (const o of bentoTagged) await bento.tagged.getOrSet(o);
  computed = 0;

  const names = {
    bento: 'bentocache getOrSet (memory L1), untagged',
    bentoTagged: 'bentocache getOrSet (memory L1), 3 tags',
    copies: 'ours: copies (default), untagged',
    copiesTagged: 'ours: copies (default), 3 tags',
    refs: 'ours: serialize: false, untagged',
    refsTagged: 'ours: serialize: false, 3 tags',
  };
  const ours = (cache: TieredCache, opts: Array<{ ttl: number; tags?: string[] }>) =>
    hits((k, i) => cache.getOrSet(k, factory, opts[i]));
  const results = await compare(
    [
      { name: names.bento, run: hits((_, i) => bento.untagged.getOrSet(bentoUntagged[i])) },
      { name: names.bentoTagged, run: hits((_, i) => bento.tagged.getOrSet(bentoTagged[i])) },
      { name: names.copies, run: ours(caches.copies, untaggedOptions) },
      { name: names.copiesTagged, run: ours(caches.copiesTagged, taggedOptions) },
      { name: names.refs, run: ours(caches.refs, untaggedOptions) },
      { name: names.refsTagged, run: ours(caches.refsTagged, taggedOptions) },
    ],
    { ops: 10_000, rounds: ROUNDS },
  );
  if (computed > 0) throw new Error(`getOrSet hit benchmark: ${computed} factory calls`);
  table('memory-tier hit, getOrSet (one small object, sequential awaits)', results);
  ratios(results, [
    {
      label: 'getOrSet, copies (default)',
      tagged: names.copiesTagged,
      untagged: names.copies,
      goal: true,
    },
    {
      label: 'getOrSet, serialize: false',
      tagged: names.refsTagged,
      untagged: names.refs,
      goal: true,
    },
    {
      label: 'bentocache getOrSet (peer)',
      tagged: names.bentoTagged,
      untagged: names.bento,
      goal: false,
    },
    {
      label: 'ours tagged copies vs bentocache tagged (cost ratio, < 1: ours faster)',
      tagged: names.copiesTagged,
      untagged: names.bentoTagged,
      goal: false,
    },
  ]);
  await Promise.all([
    ...Object.values(caches).map((c) => c.store.disconnect()),
    bento.untagged.disconnect(),
    bento.tagged.disconnect(),
  ]);
}

/** A BentoCache of a memory L1 alone (its defaults otherwise). */
function bentoCache(prefix: string) {
  return new BentoCache({
    default: 'cache',
    stores: {
      cache: bentostore().useL1Layer(memoryDriver({ maxSize: '100mb', maxItems: 10_000 })),
    },
    prefix,
  });
}

// ---------------------------------------------------------------- remote hit

/**
 * A memcached hit with the memory tier empty (`[memory (1 entry), memcached]`, as in the
 * memcached-hit scenario), tagged vs untagged, each store in a process of its own, 50 reads in
 * flight. For information: the goal is the memory tier's.
 */
async function remoteHit(servers: BenchServers): Promise<void> {
  const tiers: TierOptions[] = [
    { type: 'memory', maxEntries: 1 },
    { type: 'memcached', servers: servers.memcached },
  ];
  const untaggedNs = `tgru${process.pid}`;
  const taggedNs = `tgrt${process.pid}`;
  const seed = async (ns: string, tagged: boolean) => {
    const store = await connectedStore(tiers, ns);
    if (tagged) await invalidateAll((t) => store.invalidateTags(t));
    for (const [i, k] of KEYS.entries())
      await store.set(k, PRODUCT, tagged ? { ttl: TTL, tags: tagsOf(i) } : { ttl: TTL });
    await store.disconnect();
  };
  await seed(untaggedNs, false);
  await seed(taggedNs, true);
  const names = {
    untagged: 'memcached hit, untagged',
    tagged: 'memcached hit, 3 tags',
  };
  const starts = [
    isolated(names.untagged, 'storeGet', {
      tiers,
      namespace: untaggedNs,
      keys: KEYS,
      concurrency: 50,
    }),
    isolated(names.tagged, 'storeGet', {
      tiers,
      namespace: taggedNs,
      keys: KEYS,
      concurrency: 50,
    }),
  ];
  const settled = await Promise.allSettled(starts);
  const started = settled.flatMap((c) => (c.status === 'fulfilled' ? [c.value] : []));
  try {
    const failed = settled.find((c) => c.status === 'rejected');
    if (failed) throw failed.reason;
    const results = await compare(started as IsolatedContender[], {
      ops: 10_000,
      rounds: ROUNDS,
    });
    table(
      'memcached hit, memory tier empty (store.get, 50 in flight, each store in a process of its own)',
      results,
    );
    ratios(results, [
      {
        label: 'store.get, memcached hit (information)',
        tagged: names.tagged,
        untagged: names.untagged,
        goal: false,
      },
    ]);
  } finally {
    await Promise.all(started.map((c) => c.close()));
  }
}

// ---------------------------------------------------------------- invalidateTags

/** `invalidateTags` on a store of memory + memcached (memcached holds tag times). */
async function invalidateOnMemcached(servers: BenchServers): Promise<void> {
  const store = await connectedStore(
    [{ type: 'memory' }, { type: 'memcached', servers: servers.memcached }],
    `tginv${process.pid}`,
  );
  const raw = memjsClient(servers.memcached);
  const payload = new Codec().encode(Date.now(), 0);
  try {
    await latencyTable(
      'invalidateTags latency, memcached holds tag times (memory + memcached, 3 servers)',
      [
        { name: 'raw memjs set (1 key)', call: (i) => raw.set(`rawinv:${i % 100}`, payload, {}) },
        {
          name: 'raw memjs set then get (1 key)',
          call: async (i) => {
            await raw.set(`rawinv2:${i % 100}`, payload, {});
            await raw.get(`rawinv2:${i % 100}`);
          },
        },
        {
          name: 'ours: invalidateTags (1 tag)',
          call: (i) => store.invalidateTags([`t${i % 100}`]),
        },
        {
          name: 'ours: invalidateTags (3 tags)',
          call: (i) => store.invalidateTags([`a${i % 100}`, `b${i % 100}`, `c${i % 100}`]),
        },
      ],
    );
  } finally {
    raw.close();
    await store.disconnect();
  }
}

/** `invalidateTags` on a store of memory + Cassandra (Cassandra holds tag times). */
export async function tagsCassandra(servers: BenchServers): Promise<boolean> {
  const keyspace = `bench_tags_${process.pid}`;
  const contactPoint = servers.cassandra.contactPoints[0];
  const store = await connectedStore(
    [{ type: 'memory' }, { type: 'cassandra', ...servers.cassandra, keyspace }],
    'tginv',
  );
  const raw = cassandraClient(contactPoint, servers.cassandra.localDataCenter);
  await raw.connect().catch(async (err: unknown) => {
    await store.disconnect();
    throw err;
  });
  // As the tier runs its statements: prepared, at local one.
  const localOne = { prepare: true, consistency: types.consistencies.localOne };
  const payload = new Codec().encode(Date.now(), 0);
  const insert = `INSERT INTO ${keyspace}.cache (k, v) VALUES (?, ?)`;
  const select = `SELECT v FROM ${keyspace}.cache WHERE k = ?`;
  try {
    await latencyTable(
      'invalidateTags latency, Cassandra holds tag times (memory + Cassandra, one node)',
      [
        {
          name: 'raw cassandra-driver prepared INSERT',
          call: (i) => raw.execute(insert, [`rawinv:${i % 100}`, payload], localOne),
        },
        {
          name: 'raw prepared INSERT then SELECT',
          call: async (i) => {
            await raw.execute(insert, [`rawinv2:${i % 100}`, payload], localOne);
            await raw.execute(select, [`rawinv2:${i % 100}`], localOne);
          },
        },
        {
          name: 'ours: invalidateTags (1 tag)',
          call: (i) => store.invalidateTags([`t${i % 100}`]),
        },
        {
          name: 'ours: invalidateTags (3 tags)',
          call: (i) => store.invalidateTags([`a${i % 100}`, `b${i % 100}`, `c${i % 100}`]),
        },
      ],
    );
  } finally {
    await store.disconnect();
    await raw.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await raw.shutdown();
  }
  return true;
}

interface LatencyContender {
  name: string;
  call: (i: number) => Promise<unknown>;
}

const LATENCY_ROUNDS = 4;
const PER_ROUND = 50;

/**
 * Each contender's calls, one at a time, in LATENCY_ROUNDS alternated rounds of PER_ROUND (after
 * 20 warm-up calls each); prints p50, p99 and max, and each one's p50 over the first's.
 */
async function latencyTable(title: string, contenders: LatencyContender[]): Promise<void> {
  const samples = new Map<string, number[][]>(contenders.map((c) => [c.name, []]));
  let n = 0;
  for (const c of contenders) for (let i = 0; i < 20; i++) await c.call(n++);
  for (let r = 0; r < LATENCY_ROUNDS; r++) {
    for (const c of r % 2 === 0 ? contenders : [...contenders].reverse()) {
      const times: number[] = [];
      for (let i = 0; i < PER_ROUND; i++) {
        const t0 = process.hrtime.bigint();
        await c.call(n++);
        times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      samples.get(c.name)!.push(times);
    }
  }
  const width = Math.max(...contenders.map((c) => c.name.length));
  const calls = LATENCY_ROUNDS * PER_ROUND;
  console.log(
    `\n## ${title}\n  ${calls} calls each, one at a time, ${LATENCY_ROUNDS} alternated rounds; ratio: p50 / the raw single write's p50, median of the rounds' [min–max]`,
  );
  console.log(
    `  ${'contender'.padEnd(width)}  ${'p50 ms'.padStart(8)}  ${'p99 ms'.padStart(8)}  ${'max ms'.padStart(8)}  p50 ratio`,
  );
  const base = samples.get(contenders[0].name)!;
  for (const c of contenders) {
    const rounds = samples.get(c.name)!;
    const all = percentiles(rounds.flat());
    const perRound = rounds.map((r, i) => percentiles(r).p50 / percentiles(base[i]).p50);
    const spread = c === contenders[0] ? '' : spreadOf(perRound);
    console.log(
      `  ${c.name.padEnd(width)}  ${all.p50.toFixed(3).padStart(8)}  ${all.p99.toFixed(3).padStart(8)}  ${all.max.toFixed(3).padStart(8)}  ${spread}`,
    );
  }
}

// ---------------------------------------------------------------- printing

/** Prints each cost ratio (tagged time per op / untagged), median over paired rounds [min–max]. */
function ratios(results: Result[], checks: CostRatio[]): void {
  const by = new Map(results.map((r) => [r.name, r.rounds]));
  for (const c of checks) {
    const tagged = by.get(c.tagged)!;
    const untagged = by.get(c.untagged)!;
    // ops/s untagged / ops/s tagged = time per op tagged / untagged.
    const perRound = tagged.map((t, i) => untagged[i] / t);
    // Every round runs as many operations: the ratio of the time all rounds took, which counts
    // the rare slow round (tag times re-read) that the median leaves out.
    const time = (rounds: number[]) => rounds.reduce((sum, opsPerSec) => sum + 1 / opsPerSec, 0);
    const total = time(tagged) / time(untagged);
    const f: Figure = { label: c.label, goal: c.goal, ...stats(perRound) };
    const mark = c.goal ? `  goal ≤ ${GOAL}×: ${f.median <= GOAL ? 'met' : 'MISSED'}` : '';
    console.log(
      `  cost ratio, ${c.label}: ${spreadOf(perRound)}, all rounds' time ${total.toFixed(3)}×${mark}`,
    );
    if (c.goal) figures.push(f);
  }
}

/** The one-line verdict over every goal figure (medians); true when all are met. */
function verdict(): boolean {
  const missed = figures.filter((f) => f.median > GOAL);
  const worst = figures.reduce((a, b) => (b.median > a.median ? b : a));
  const list = figures
    .map((f) => `${f.label} ${up(f.median)}× ${f.median > GOAL ? 'MISSED' : 'met'}`)
    .join('; ');
  console.log(
    `\nVERDICT: goal (a tagged hit costs ≤ ${GOAL}× an untagged one) ${missed.length === 0 ? 'met' : 'MISSED'}: worst ${up(worst.median)}× (${worst.label}). ${list}`,
  );
  return missed.length === 0;
}

/** A ratio rounded up to 3 decimals: a figure just over the goal never prints as meeting it. */
const up = (v: number): string => (Math.ceil(v * 1000 - 1e-9) / 1000).toFixed(3);

/** Median [min–max], the median rounded up (see {@link up}). */
function spreadOf(values: number[]): string {
  const s = stats(values);
  return `${up(s.median)}× [${s.min.toFixed(3)}–${s.max.toFixed(3)}]`;
}

function percentiles(values: number[]): { p50: number; p99: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] };
}
