import { InvalidOptionError, TieredCacheError } from '../../lib/errors';
import { KeyBuilder } from '../../lib/keys/key-builder';
import { Codec } from '../../lib/serialization/codec';
import { createTieredKeyv } from '../../lib/store/keyv-adapter';
import { TieredStore } from '../../lib/store/tiered-store';
import type { TieredStoreOptions } from '../../lib/store/tiered-store.options';
import type { Tier } from '../../lib/tiers/tier.interface';
import type { TierOptions } from '../../lib/tiers/tier-options';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import { withFaults } from '../support/fault-tier';
import { ManualClock } from '../support/manual-clock';
import { MapTier } from '../support/map-tier';

const servers = testServers();
const keyspace = uniqueName('iterate').toLowerCase();
// No 5 s cap: expiry is tested on the manual clock, with TTLs long in real time.
const memory: TierOptions = { type: 'memory', ttl: 0 };
const memcached: TierOptions = { type: 'memcached', servers: servers.memcached };
// A cold single node may take a few seconds for DDL and for thousands of writes at once.
const cassandra: TierOptions = {
  type: 'cassandra',
  ...servers.cassandra,
  keyspace,
  timeout: 20_000,
};

dropKeyspaceAfterAll(keyspace);

/** Everything an iteration yields, as a map (each key must come once). */
async function listed<T>(source: AsyncIterable<[string, T]>): Promise<Map<string, T>> {
  const found = new Map<string, T>();
  for await (const [key, value] of source) {
    expect(found.has(key)).toBe(false);
    found.set(key, value);
  }
  return found;
}

/** Keys that the store hashes (too long, or holding what memcached refuses). */
const HASHED_KEYS = [
  'k'.repeat(400),
  'has space',
  'tab\there',
  'new\nline',
  'del\u007f',
  `é${'ü'.repeat(200)}`,
  'emoji 😀 with a space',
];

/** The chain whose farthest tier can list its keys: every one of them can be iterated. */
const ENUMERABLE: Array<[string, () => TierOptions[]]> = [
  ['memory alone', () => [memory]],
  ['Cassandra alone', () => [cassandra]],
  ['memory → memcached → Cassandra', () => [memory, memcached, cassandra]],
];

const open: TieredStore[] = [];
let clock: ManualClock;
let namespace: string;

/** A connected store of this test's namespace (unless given another) on the manual clock. */
async function store(tiers: Array<TierOptions | Tier<unknown>>, extra: TieredStoreOptions = {}) {
  const s = new TieredStore({ tiers, namespace, clock, ...extra });
  const errors: Error[] = [];
  s.on('error', (e: Error) => errors.push(e));
  open.push(s);
  await s.connect();
  return Object.assign(s, { errors });
}

/** Moves the manual clock; lru-cache keeps its clock reading for 1 ms of real time. */
async function advance(ms: number): Promise<void> {
  clock.advance(ms);
  await new Promise((r) => setTimeout(r, 5));
}

beforeEach(() => {
  clock = new ManualClock();
  namespace = uniqueName('iter');
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.disconnect()));
});

describe.each(ENUMERABLE)('iterate(): %s', (name, tiers) => {
  const shared = name !== 'memory alone';

  it('lists every live entry once, keys as written (hashed ones too), values as stored', async () => {
    const s = await store(tiers());
    const expected = new Map<string, unknown>([
      ['a', 1],
      ['user:1', { name: 'Ada', tags: ['x', 'y'] }],
      ['x#y', 'hash sign, plain key'],
      ['ns:1:0:looks-final', null],
      ['ключ', [1, 2, 3]],
      ['42', 'a number key comes back as its string'],
      [HASHED_KEYS[0], { long: true }],
      [HASHED_KEYS[1], new Date(5)],
      [HASHED_KEYS[2], new Map([['m', 1n]])],
      [HASHED_KEYS[3], 'newline'],
      [HASHED_KEYS[4], -0],
      [HASHED_KEYS[5], { accents: 'é' }],
      [HASHED_KEYS[6], Buffer.from('bytes')],
    ]);
    for (const [key, value] of expected)
      if (key !== '42') expect(await s.set(key, value, 60_000)).toBe(true);
    await s.set(42 as unknown as string, expected.get('42'), 0);
    // Read-through entries and batches are listed as well.
    await s.setEntry('entry', 'read-through', { ttl: 60_000, grace: 1000 });
    await s.setMany([
      { key: 'many:1', value: 'm1', ttl: 60_000 },
      { key: `many ${'2'.repeat(300)}`, value: 'm2' },
    ]);
    expected.set('entry', 'read-through');
    expected.set('many:1', 'm1');
    expected.set(`many ${'2'.repeat(300)}`, 'm2');

    const found = await listed(s.iterate());
    expect([...found.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [key, value] of expected) expect(found.get(key)).toEqual(value);
    expect(Object.is(found.get(HASHED_KEYS[4]), -0)).toBe(true);
    // Each value read is the reader's own copy.
    (found.get('user:1') as { name: string }).name = 'changed';
    expect(await s.get('user:1')).toEqual({ name: 'Ada', tags: ['x', 'y'] });

    if (shared) {
      // Another instance lists what this one wrote: it is read from the shared farthest tier.
      const other = await store(tiers());
      const seen = await listed(other.iterate());
      expect([...seen.keys()].sort()).toEqual([...expected.keys()].sort());
    }
    expect(s.errors).toEqual([]);
  });

  it('lists no expired, stale or deleted entry', async () => {
    const s = await store(tiers());
    await s.set('kept', 'kept', 600_000);
    await s.set('forever', 'forever', 0);
    // Expired on the manual clock, long before the servers' own TTLs (real time) run out.
    await s.set('short', 'short', 30_000);
    await s.set(`short ${'x'.repeat(300)}`, 'short, hashed', 30_000);
    await s.setEntry('stale', 'stale', { ttl: 30_000, grace: 600_000 });
    await s.set('deleted', 'deleted', 60_000);
    await s.set(`deleted ${'y'.repeat(300)}`, 'deleted, hashed', 60_000);
    await s.set('many:1', 1, 60_000);
    await s.set('many:2', 2, 60_000);
    expect(await s.delete('deleted')).toBe(true);
    expect(await s.delete(`deleted ${'y'.repeat(300)}`)).toBe(true);
    expect(await s.deleteMany(['many:1', 'many:2'])).toBe(true);
    expect([...(await listed(s.iterate())).keys()].sort()).toEqual([
      'forever',
      'kept',
      'short',
      `short ${'x'.repeat(300)}`,
      'stale',
    ]);
    await advance(31_000);
    // Past its logical expiry, `stale` is still held (its grace runs), but no longer live.
    expect((await s.getEntry('stale'))?.value).toBe('stale');
    expect(await listed(s.iterate())).toEqual(
      new Map([
        ['forever', 'forever'],
        ['kept', 'kept'],
      ]),
    );
  });

  it('lists neither other namespaces and versions nor a cleared generation', async () => {
    const s = await store(tiers());
    const otherNamespace = await store(tiers(), { namespace: `${namespace}x` });
    const otherVersion = await store(tiers(), { version: 2 });
    await s.set('k', 'mine', 60_000);
    await s.set('long k'.repeat(60), 'mine, hashed', 60_000);
    await otherNamespace.set('k', 'other namespace', 60_000);
    await otherNamespace.set('long k'.repeat(60), 'other namespace', 60_000);
    await otherVersion.set('k', 'other version', 60_000);
    await otherVersion.set('v2 only', 'other version', 60_000);
    expect(await listed(s.iterate())).toEqual(
      new Map([
        ['k', 'mine'],
        ['long k'.repeat(60), 'mine, hashed'],
      ]),
    );
    expect(await listed(otherVersion.iterate())).toEqual(
      new Map([
        ['k', 'other version'],
        ['v2 only', 'other version'],
      ]),
    );

    await s.clear();
    expect(await listed(s.iterate())).toEqual(new Map());
    await s.set('new', 'after clear', 60_000);
    expect(await listed(s.iterate())).toEqual(new Map([['new', 'after clear']]));
    expect((await listed(otherNamespace.iterate())).size).toBe(2);
    if (shared) {
      // An instance that still has the old generation picks the new one up before listing.
      const late = new TieredStore({ tiers: tiers(), namespace, clock });
      open.push(late);
      await late.connect();
      await s.clear();
      expect(late.generation).toBeLessThan(s.generation);
      expect(await listed(late.iterate())).toEqual(new Map());
      expect(late.generation).toBe(s.generation);
    }
  });

  it('lists neither read-through leases nor the generation counter', async () => {
    const s = await store(tiers());
    await s.clear(); // the generation counter exists
    await s.set('k', 'v', 60_000);
    await s.set('long k'.repeat(60), 'v', 60_000);
    for (const key of ['k', 'long k'.repeat(60), 'only leased'])
      await s.acquireLease(s.leaseKey(key), Buffer.from('holder'), 60_000);
    expect([...(await listed(s.iterate())).keys()].sort()).toEqual(['k', 'long k'.repeat(60)]);
    expect(s.errors).toEqual([]); // left out, not read and found undecodable
  });

  it("is Keyv's iterator(), through createTieredKeyv", async () => {
    const s = await store(tiers());
    const keyv = createTieredKeyv(s);
    await keyv.set('from keyv', { a: 1 }, 60_000);
    await keyv.set('long keyv key '.repeat(30), new Date(7));
    await s.set('from the store', 'direct', 60_000);
    await keyv.set('gone', 1, 60_000);
    await keyv.delete('gone');
    expect(typeof keyv.iterator).toBe('function');
    // Keyv types its iterator as taking an argument (a namespace), which it never uses here.
    const found = await listed(keyv.iterator!(undefined) as AsyncIterable<[string, unknown]>);
    expect(found).toEqual(
      new Map<string, unknown>([
        ['from keyv', { a: 1 }],
        ['long keyv key '.repeat(30), new Date(7)],
        ['from the store', 'direct'],
      ]),
    );
  });
});

describe('iterate() on chains whose farthest tier cannot list its keys', () => {
  const message =
    'iterate(): the farthest tier, "memcached" (memcached), cannot list its keys (its ' +
    'capabilities say enumerate: false): a chain can be iterated when its farthest tier can, as ' +
    'the memory and Cassandra tiers do (memcached has no key listing)';

  it.each([
    ['memcached alone', [memcached]],
    ['memory → memcached', [memory, memcached]],
  ])('%s: rejects with a TieredCacheError naming the tier and the reason', async (_n, tiers) => {
    const s = await store(tiers);
    await s.set('k', 'v', 60_000);
    const iteration = s.iterate();
    const failure = iteration.next();
    await expect(failure).rejects.toThrow(new TieredCacheError('E_NOT_SUPPORTED', message));
    await expect(failure).rejects.toBeInstanceOf(TieredCacheError);
    await expect(failure).rejects.toMatchObject({ code: 'E_NOT_SUPPORTED' });
    await expect(listed(s.iterateRecords())).rejects.toThrow(message);
    // Keyv's iterator says the same, at its first step.
    const keyv = createTieredKeyv(s);
    await expect(
      listed(keyv.iterator!(undefined) as AsyncIterable<[string, unknown]>),
    ).rejects.toThrow(message);
    expect(s.errors).toEqual([]);
  });
});

describe('iterate() with keyFn', () => {
  const keyFn = (key: string) => key.toLowerCase();

  it.each([
    ['memory alone', () => [memory]],
    ['Cassandra alone', () => [cassandra]],
  ])('%s: lists the keys as keyFn made them, hashed ones too', async (_n, tiers) => {
    const s = await store(tiers(), { keyFn });
    await s.set('User:1', 'plain', 60_000);
    await s.set('Has Space', 'hashed', 60_000);
    await s.set(`LONG${'K'.repeat(300)}`, 'long', 60_000);
    expect(await listed(s.iterate())).toEqual(
      new Map([
        ['user:1', 'plain'],
        ['has space', 'hashed'],
        [`long${'k'.repeat(300)}`, 'long'],
      ]),
    );
  });
});

describe('iterate(): paging', () => {
  it('Cassandra: a table of a few thousand rows comes back whole, page by page', async () => {
    const s = await store([cassandra]);
    const count = 3500;
    const entries = Array.from({ length: count }, (_, i) => ({
      key: i % 7 === 0 ? `row ${i} ${'h'.repeat(260)}` : `row:${i}`,
      value: { i },
      ttl: 600_000,
    }));
    for (let i = 0; i < count; i += 500) await s.setMany(entries.slice(i, i + 500));
    // Rows of another namespace in the same table are paged through and left out.
    const other = await store([cassandra], { namespace: `${namespace}x` });
    await other.setMany(entries.slice(0, 800));
    const found = await listed(s.iterate<{ i: number }>());
    expect(found.size).toBe(count);
    for (const e of entries) expect(found.get(e.key)).toEqual(e.value);
    expect(s.errors).toEqual([]);
  });
});

describe('iterate(): tiers of your own', () => {
  it('a farthest tier that fails while listing: rejects, and reports it', async () => {
    const far = withFaults(new MapTier({ name: 'far' }));
    const s = await store([memory, far]);
    await s.set('k', 'v', 60_000);
    expect(await listed(s.iterate())).toEqual(new Map([['k', 'v']]));
    expect(far.calls.entries).toBe(1);
    const boom = new Error('far: listing failed');
    far.fail('entries', { error: boom, times: 1 });
    await expect(listed(s.iterate())).rejects.toBe(boom);
    expect(s.errors.map(String)).toEqual(['TierError: far: iterate failed: far: listing failed']);
    expect(s.stats()[1].errors).toBe(1);
  });

  it('a tier holding leases, counters and the generation lists the values alone', async () => {
    const backend = new Map();
    const s = await store([new MapTier({ backend })]);
    await s.clear(); // the generation counter, in the same map
    await s.set('k', 'v', 60_000);
    await s.set('long k'.repeat(60), 'v', 60_000);
    expect(await s.increment('hits', 3)).toBe(3); // a counter is a value here: get reads it
    for (const key of ['k', 'long k'.repeat(60), 'only leased'])
      expect(await s.acquireLease(s.leaseKey(key), Buffer.from('holder'), 60_000)).toBe('acquired');
    expect(backend.size).toBe(7);
    expect(await listed(s.iterate())).toEqual(
      new Map<string, unknown>([
        ['k', 'v'],
        ['long k'.repeat(60), 'v'],
        ['hits', 3],
      ]),
    );
    expect(s.errors).toEqual([]);
  });

  it('skips hashed entries written before entries kept their key', async () => {
    const backend = new Map();
    const s = await store([new MapTier({ backend })]);
    await s.set('has space', 'new', 60_000);
    const keys = new KeyBuilder({ namespace });
    const old = new Codec().encode('old', 0); // no key in it, as before
    backend.set(keys.build('old key with space'), { value: old, expiresAt: 0 });
    backend.set(keys.build('old:plain'), { value: old, expiresAt: 0 });
    expect(await s.get('old key with space')).toBe('old');
    expect(await listed(s.iterate())).toEqual(
      new Map([
        ['has space', 'new'],
        ['old:plain', 'old'],
      ]),
    );
  });

  it('a tier object must have entries() when its capabilities say enumerate', () => {
    const bare = new MapTier({ name: 'bare' });
    const lacking = Object.assign(Object.create(bare) as MapTier, { entries: undefined });
    expect(() => new TieredStore({ tiers: [lacking] })).toThrow(
      new InvalidOptionError('tiers[0]', 'tier object "bare" lacks entries'),
    );
    const odd = new MapTier({ capabilities: { enumerate: 'yes' as unknown as boolean } });
    expect(() => new TieredStore({ tiers: [odd] })).toThrow(
      new InvalidOptionError(
        'tiers[0].capabilities.enumerate',
        'must be true or false, got string',
      ),
    );
    // One that cannot list its keys needs no entries() (and the store cannot be iterated).
    const mute = new MapTier({ name: 'mute', capabilities: { enumerate: false } });
    expect(() => new TieredStore({ tiers: [mute] })).not.toThrow();
  });
});
