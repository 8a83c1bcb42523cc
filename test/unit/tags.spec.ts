import { setTimeout as sleep } from 'node:timers/promises';
import { Codec, createTieredKeyv, createTieredStore, TieredCacheError } from '../../lib';
import { ReadThrough } from '../../lib/herd/read-through';
import { resolveHerdOptions } from '../../lib/herd/herd.options';
import { withFaults } from '../support/fault-tier';
import { ManualClock } from '../support/manual-clock';
import { MapTier, type MapBackend } from '../support/map-tier';

/**
 * Tags in one process, over the memory tier and in-process shared tiers (`MapTier`); the same
 * guarantees on real servers and between processes are in test/integration/tags*.spec.ts.
 */
const T0 = 1_000_000;

/** The clock moves on (lru-cache reads it at most once per millisecond). */
async function tick(clock: ManualClock, ms = 1): Promise<void> {
  clock.advance(ms);
  await sleep(5);
}

describe('tags in one process', () => {
  it('memory only: an invalidated tag covers its entries on every read path, and only them', async () => {
    const clock = new ManualClock(T0);
    const s = createTieredStore({ clock, tiers: [{ type: 'memory' }] });
    const keyv = createTieredKeyv(s);
    await s.set('a', 1, { ttl: 60_000, tags: ['x', 'y'] });
    await s.set('b', 2, { ttl: 60_000, tags: ['y'] });
    await s.set('c', 3, { ttl: 60_000 });
    await s.setMany([{ key: 'd', value: 4, tags: ['x'] }]);
    expect(await s.getMany(['a', 'b', 'c', 'd'])).toEqual([1, 2, 3, 4]);
    await s.invalidateTags(['x']);
    expect(await s.get('a')).toBeUndefined();
    expect(await s.get('d')).toBeUndefined();
    expect(await s.has('a')).toBe(false);
    expect(await s.getRecord('a')).toBeUndefined();
    expect(await keyv.get('a')).toBeUndefined();
    expect(await s.getMany(['a', 'b', 'c', 'd'])).toEqual([undefined, 2, 3, undefined]);
    const listed = [];
    for await (const [key] of s.iterate()) listed.push(key);
    expect(listed.sort()).toEqual(['b', 'c']);
    // Written again after the invalidation: fresh.
    await s.set('a', 10, { tags: ['x'] });
    expect(await s.get('a')).toBe(10);
  });

  it('keeps the order of a write and an invalidation made in one millisecond', async () => {
    const clock = new ManualClock(T0); // never advanced
    const s = createTieredStore({ clock, tiers: [{ type: 'memory' }] });
    await s.set('before', 1, { tags: ['t'] });
    await s.invalidateTags(['t']);
    await s.set('after', 2, { tags: ['t'] });
    expect(await s.get('before')).toBeUndefined();
    expect(await s.get('after')).toBe(2);
  });

  it('between stores, a write and an invalidation in one millisecond count as the write first', async () => {
    const clock = new ManualClock(T0); // never advanced
    const backend: MapBackend = new Map();
    const make = () => createTieredStore({ clock, tiers: [new MapTier({ backend, clock })] });
    const [a, b] = [make(), make()];
    for (let i = 0; i < 5; i++) await b.set(`b${i}`, i, { tags: ['t'] }); // b's stamps run ahead
    await a.invalidateTags(['t']);
    await a.set('a-after', 1, { tags: ['t'] });
    await b.set('b-after', 1, { tags: ['t'] });
    await tick(clock);
    await b.set('next-ms', 1, { tags: ['t'] });
    for (const reader of [a, b]) {
      expect(await reader.getMany(['b0', 'b4', 'a-after', 'b-after', 'next-ms'])).toEqual([
        undefined,
        undefined,
        undefined, // times on a shared tier are compared to the millisecond: covered
        undefined, // b cannot know it came after a's invalidation: covered
        1,
      ]);
    }
  });

  it('two instances over one shared tier: the other sees it within tagRefreshMs', async () => {
    const clock = new ManualClock(T0);
    const backend: MapBackend = new Map();
    const make = () =>
      createTieredStore({
        clock,
        tagRefreshMs: 1000,
        tiers: [{ type: 'memory' }, new MapTier({ backend, clock })],
      });
    const [a, b] = [make(), make()];
    await Promise.all([a.connect(), b.connect()]);
    await a.set('k', 'v', { ttl: 60_000, tags: ['t'] });
    expect(await b.get('k')).toBe('v'); // b now knows t's times, and holds k in memory
    await tick(clock);
    await a.invalidateTags(['t']);
    expect(await a.get('k')).toBeUndefined();
    expect(await b.get('k')).toBe('v'); // within the bound: b still trusts what it read
    await tick(clock, 1000);
    expect(await b.get('k')).toBeUndefined();
    expect(await b.getMany(['k'])).toEqual([undefined]);
    expect(await b.has('k')).toBe(false);
    await a.set('k', 'w', { ttl: 60_000, tags: ['t'] });
    expect(await b.get('k')).toBe('w');
    // One key per tag and mode, outside every generation.
    const tagKeys = [...backend.keys()].filter((k) => k.includes(':tag-'));
    expect(tagKeys).toEqual([expect.stringMatching(/^app:1:tag-delete#[\w-]{43}$/)]);
    await b.clear();
    await a.refreshGeneration();
    await a.set('k2', 1, { tags: ['t'] });
    expect(await a.get('k2')).toBe(1);
  });

  it('times about to lose their trust are read again in the background, without making hits wait', async () => {
    const clock = new ManualClock(T0);
    const backend: MapBackend = new Map();
    const far = withFaults(new MapTier({ backend, clock, name: 'far' }));
    const s = createTieredStore({ clock, tagRefreshMs: 1000, tiers: [{ type: 'memory' }, far] });
    const other = createTieredStore({ clock, tiers: [new MapTier({ backend, clock })] });
    await s.connect();
    await s.set('k', 1, { ttl: 60_000, tags: ['t'] });
    expect(await s.get('k')).toBe(1); // reads t's times: trusted until T0 + 1000
    const reads = () => far.calls.getMany;
    const before = reads();
    await tick(clock, 500);
    expect(await s.get('k')).toBe(1);
    expect(reads()).toBe(before); // still well trusted: nothing read
    await other.invalidateTags(['t']);
    await tick(clock, 300); // 200 ms of trust left: the hit is answered, a read starts
    expect(await s.get('k')).toBe(1);
    // The background read brings the invalidation.
    await waitFor(async () => (await s.get('k')) === undefined);
    expect(reads()).toBe(before + 1);
  });

  it('after a quiet while, the first read of lapsed times brings every lapsed tag at once', async () => {
    const clock = new ManualClock(T0);
    const far = withFaults(new MapTier({ clock, name: 'far' }));
    const s = createTieredStore({ clock, tagRefreshMs: 1000, tiers: [{ type: 'memory' }, far] });
    await s.connect();
    for (const i of [1, 2, 3]) await s.set(`k${i}`, i, { ttl: 60_000, tags: [`t${i}`] });
    expect(await s.getMany(['k1', 'k2', 'k3'])).toEqual([1, 2, 3]);
    await tick(clock, 1001); // nothing read meanwhile: every tag's trust has ended
    const before = far.calls.getMany;
    expect(await s.get('k1')).toBe(1);
    expect(await s.get('k2')).toBe(2);
    expect(await s.get('k3')).toBe(3);
    expect(far.calls.getMany - before).toBe(1);
  });

  it('expire: entries with grace turn stale (read-through serves them), others are gone', async () => {
    const clock = new ManualClock(T0);
    const s = createTieredStore({ clock, tiers: [{ type: 'memory' }] });
    await s.setEntry('graced', 'old', { ttl: 60_000, grace: 30_000, tags: ['p'] });
    await s.setEntry('plain', 'old', { ttl: 60_000, tags: ['p'] });
    await s.set('set', 'old', { ttl: 60_000, tags: ['p'] });
    await tick(clock);
    await s.invalidateTags(['p'], { mode: 'expire' });
    expect(await s.get('graced')).toBeUndefined();
    const stale = await s.getEntry('graced');
    expect(stale).toMatchObject({ value: 'old', staleAt: T0 + 1 });
    // As if its TTL had ended at the invalidation: its grace counts from then.
    expect(stale!.expiresAt).toBe(T0 + 1 + 30_000);
    expect(await s.getEntry('plain')).toBeUndefined();
    expect(await s.getEntry('set')).toBeUndefined();

    let calls = 0;
    const origin = async () => {
      calls++;
      return 'new';
    };
    const rt = new ReadThrough(s, { clock, onBackgroundError: () => undefined });
    const call = {
      ...resolveHerdOptions({ grace: 30_000 }, undefined, 'test', []),
      ttl: 60_000,
      condition: undefined,
      tags: ['p'],
    };
    const first = await rt.lookup('graced', origin, call);
    expect(first).toMatchObject({ value: 'old', status: 'STALE' });
    await rt.lookup('graced', origin, call);
    await waitFor(async () => (await s.get('graced')) === 'new');
    expect(calls).toBe(1);
    // Past the grace counted from the invalidation: gone.
    await s.setEntry('late', 'old', { ttl: 60_000, grace: 30_000, tags: ['q'] });
    await tick(clock);
    await s.invalidateTags(['q'], { mode: 'expire' });
    await tick(clock, 30_001);
    expect(await s.getEntry('late')).toBeUndefined();
  });

  it('a delete after an expire wins, and a read-through value computed across an invalidation is covered', async () => {
    const clock = new ManualClock(T0);
    const s = createTieredStore({ clock, tiers: [{ type: 'memory' }] });
    await s.setEntry('k', 'old', { ttl: 60_000, grace: 60_000, tags: ['p'] });
    await s.invalidateTags(['p'], { mode: 'expire' });
    await s.invalidateTags(['p'], { mode: 'delete' });
    expect(await s.getEntry('k')).toBeUndefined();

    const rt = new ReadThrough(s, { clock, onBackgroundError: () => undefined });
    const call = {
      ...resolveHerdOptions({}, undefined, 'test', []),
      ttl: 60_000,
      condition: undefined,
      tags: ['p'],
    };
    let release!: () => void;
    const computing = rt.lookup(
      'slow',
      () => new Promise<string>((r) => (release = () => r('computed before'))),
      call,
    );
    await waitFor(async () => release !== undefined);
    await s.invalidateTags(['p']);
    release();
    expect((await computing).value).toBe('computed before');
    expect(await s.get('slow')).toBeUndefined();
  });

  it('read-through calls a tags function only when it computes a value', async () => {
    const clock = new ManualClock(T0);
    const s = createTieredStore({ clock, tiers: [{ type: 'memory' }] });
    const rt = new ReadThrough(s, { clock, onBackgroundError: () => undefined });
    let asked = 0;
    const call = {
      ...resolveHerdOptions({}, undefined, 'test', []),
      ttl: 60_000,
      condition: undefined,
      tags: () => {
        asked++;
        return ['fn'];
      },
    };
    expect((await rt.lookup('k', async () => 'v', call)).status).toBe('MISS');
    expect((await rt.lookup('k', async () => 'w', call)).status).toBe('HIT');
    expect(asked).toBe(1);
    await s.invalidateTags(['fn']);
    expect((await rt.lookup('k', async () => 'w', call)).value).toBe('w');
    expect(asked).toBe(2);
    const failing = {
      ...call,
      tags: () => {
        throw new TypeError('no tags for this one');
      },
    };
    let ran = false;
    await expect(rt.lookup('other', async () => (ran = true), failing)).rejects.toThrow(
      'no tags for this one',
    );
    expect(ran).toBe(false);
  });

  it('the authority cannot store the time: invalidateTags rejects, naming it; this instance still applies it', async () => {
    const clock = new ManualClock(T0);
    const far = withFaults(new MapTier({ clock, name: 'far' }));
    const s = createTieredStore({ clock, tiers: [{ type: 'memory' }, far] });
    s.on('error', () => undefined);
    await s.connect();
    await s.set('k', 1, { ttl: 60_000, tags: ['t'] });
    far.fail(['raise', 'setMany']);
    const err = await s.invalidateTags(['t']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TieredCacheError);
    expect(err).toMatchObject({ code: 'E_TIER_FAILED' });
    expect((err as Error).message).toMatch(/invalidateTags\("t"\): far, which holds tag times/);
    expect(await s.get('k')).toBeUndefined();
  });

  it('reads while the authority cannot be read: known times stand, and are asked again later', async () => {
    const clock = new ManualClock(T0);
    const backend: MapBackend = new Map();
    const far = withFaults(new MapTier({ backend, clock, name: 'far' }));
    const other = createTieredStore({ clock, tiers: [new MapTier({ backend, clock })] });
    const s = createTieredStore({ clock, tagRefreshMs: 1000, tiers: [{ type: 'memory' }, far] });
    s.on('error', () => undefined);
    await s.connect();
    await s.set('k', 1, { ttl: 60_000, tags: ['t'] });
    far.fail('getMany');
    await tick(clock, 1001);
    expect(await s.get('k')).toBe(1); // never invalidated, as far as anyone could know
    await tick(clock);
    await other.invalidateTags(['t']);
    far.heal();
    await tick(clock, 1001);
    expect(await s.get('k')).toBeUndefined();
  });

  it('counters cannot be tagged', async () => {
    const s = createTieredStore({ tiers: [{ type: 'memory' }] });
    await expect(s.increment('c', 1, { tags: ['p'] } as never)).rejects.toThrow(
      new TypeError(
        'increment "c": counters cannot be tagged (invalidateTags would have to drop a count); delete the counter instead',
      ),
    );
  });

  it.each([
    [() => ({ tags: 'x' }), 'tags: must be a list of strings, got string'],
    [() => ({ tags: [''] }), 'tags[0]: must not be empty'],
    [() => ({ tags: ['a', 7] }), 'tags[1]: must be a string, got number'],
    [() => ({ tags: ['\ud800'] }), 'tags[0]: holds a lone UTF-16 surrogate'],
    [() => ({ tags: ['é'.repeat(129)] }), 'tags[0]: is 258 bytes long, at most 256 (UTF-8)'],
    [
      () => ({ tags: Array.from({ length: 65 }, (_, i) => `t${i}`) }),
      'tags: 65 tags, at most 64 per entry',
    ],
    [() => ({ tag: ['x'] }), 'set options.tag: unknown option (did you mean "tags"?)'],
  ])('set(…, %s) is refused: %s, and nothing is written', async (options, message) => {
    const s = createTieredStore({ tiers: [{ type: 'memory' }] });
    await s.set('k', 'kept');
    await expect(s.set('k', 'new', options() as never)).rejects.toThrow(message);
    expect(await s.get('k')).toBe('kept');
  });

  it('setMany of no entries writes nothing and resolves', async () => {
    const s = createTieredStore({ tiers: [{ type: 'memory' }] });
    await expect(s.setMany([])).resolves.toBeUndefined();
  });

  it('refuses bad invalidateTags arguments', async () => {
    const s = createTieredStore({ tiers: [{ type: 'memory' }] });
    await expect(s.invalidateTags('x' as never)).rejects.toThrow(
      'tags: must be a list of strings, got string',
    );
    await expect(s.invalidateTags(['x'], { mode: 'drop' as never })).rejects.toThrow(
      `mode: must be 'delete' or 'expire', got "drop"`,
    );
    await expect(s.invalidateTags(['x'], { mdoe: 'delete' } as never)).rejects.toThrow(
      'invalidateTags options.mdoe: unknown option (did you mean "mode"?)',
    );
    await expect(
      s.setMany([
        { key: 'a', value: 1 },
        { key: 'b', value: 2, tags: [3] as never },
      ]),
    ).rejects.toThrow('entries[1].tags[0]: must be a string, got number');
    expect(await s.get('a')).toBeUndefined();
  });

  it('the codec keeps tags and their time beside the key and read-through metadata', () => {
    const codec = new Codec();
    const tagged = { tags: ['a', 'ünïcode', 'x'.repeat(256)], at: T0 + 1 / 1024, by: 2 ** 32 - 1 };
    const bytes = codec.encode({ v: 1 }, 5, { staleAt: 3, delta: 2 }, 'hashed key', tagged);
    expect(codec.decode(bytes)).toEqual({
      value: { v: 1 },
      expiresAt: 5,
      staleAt: 3,
      delta: 2,
      key: 'hashed key',
      tagged,
    });
    expect(codec.decode(codec.encode(new Map([[1, 2]]), 0, undefined, undefined, tagged))).toEqual({
      value: new Map([[1, 2]]),
      expiresAt: 0,
      tagged,
    });
    const headerEnd = bytes.length - Buffer.byteLength('{"v":1}');
    expect(() => codec.decode(bytes.subarray(0, headerEnd - 3))).toThrow('truncated tags');
  });
});

async function waitFor(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await sleep(10);
  }
  throw new Error('condition not met within 5 s');
}
