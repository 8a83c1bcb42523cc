import { randomBytes } from 'node:crypto';
import { TierError, ValueTooLargeError } from '../../lib/errors';
import { HERD_DEFAULTS } from '../../lib/herd/herd.options';
import { ReadThrough } from '../../lib/herd/read-through';
import { TOMBSTONE, isTombstone } from '../../lib/store/tombstone';
import { TieredStore } from '../../lib/store/tiered-store';
import type { TieredStoreOptions } from '../../lib/store/tiered-store.options';
import { MemoryTier } from '../../lib/tiers/memory/memory.tier';
import { withFaults, type FaultTier, type LocalFaultTier } from '../support/fault-tier';
import { ManualClock } from '../support/manual-clock';
import { MapTier, type MapTierOptions } from '../support/map-tier';

/** Incompressible bytes: the codec keeps them as they are, so sizes stay predictable. */
const bytes = (n: number) => randomBytes(n);

interface Rig {
  clock: ManualClock;
  near: LocalFaultTier;
  /** A memcached stand-in: atomic leases, values up to 1,000 bytes. */
  mc: FaultTier<Buffer>;
  /** A Cassandra stand-in: consensus leases, additive counters, values up to 10,000 bytes. */
  cs: FaultTier<Buffer>;
  store: TieredStore;
  errors: TierError[];
}

describe('value limits', () => {
  const open: TieredStore[] = [];

  function rig(
    options: Partial<TieredStoreOptions> = {},
    csOptions: Partial<MapTierOptions> = {},
  ): Rig {
    const clock = new ManualClock();
    const near = withFaults(new MemoryTier({ type: 'memory' }, { clock, name: 'near' }));
    const mc = withFaults(
      new MapTier({ name: 'mc', clock, capabilities: { maxValueBytes: 1000 } }),
    );
    const cs = withFaults(
      new MapTier({
        name: 'cs',
        clock,
        capabilities: { leases: 'consensus', counters: 'additive', maxValueBytes: 10_000 },
        ...csOptions,
      }),
    );
    const store = new TieredStore({
      tiers: [near, mc, cs],
      clock,
      generationRefreshMs: 3_600_000,
      circuitBreaker: { failures: 3, cooldownMs: 1000 },
      ...options,
    });
    const errors: TierError[] = [];
    store.on('error', (e: TierError) => errors.push(e));
    open.push(store);
    return { clock, near, mc, cs, store, errors };
  }

  const stats = (store: TieredStore, name: string) => store.stats().find((s) => s.name === name)!;
  const held = async (tier: FaultTier<Buffer>) => (tier.inner as MapTier).size;
  /** What `tier` holds that is not a tombstone (a delete's mark in a tier in front of another). */
  const values = (tier: FaultTier<Buffer>) =>
    (tier.inner as MapTier).payloads().filter((p) => !isTombstone(p));

  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.disconnect()));
  });

  it('a value between two tiers’ limits skips the smaller one (its older copy deleted) and lands in the larger', async () => {
    const { mc, cs, store, errors } = rig();
    await store.connect();
    await store.set('k', 'small', 60_000);
    expect([await held(mc), await held(cs)]).toEqual([1, 2]); // (cs also holds the generation)
    mc.resetCalls();
    const value = bytes(5000);
    expect(await store.set('k', value, 60_000)).toBe(true);
    // Never sent: its older copy is replaced by a tombstone (the delete of a tier in front of
    // another), and the tier holds nothing else.
    expect(mc.calls.set).toBe(1);
    expect((mc.inner as MapTier).payloads()).toEqual([TOMBSTONE]);
    expect(stats(store, 'mc')).toMatchObject({ skipped: 1, errors: 0, circuit: 'closed' });
    const farOnly = new TieredStore({ tiers: [cs.inner], clock: new ManualClock() });
    open.push(farOnly);
    expect(await farOnly.get('k')).toEqual(value);
    expect(errors).toEqual([]);
  });

  it('five values no shared tier holds: each rejects E_TOO_LARGE, no breaker opens, the next write reaches every tier', async () => {
    const { near, mc, cs, store, errors } = rig();
    await store.connect();
    await store.set('k', 'older', 60_000);
    mc.resetCalls();
    cs.resetCalls();
    for (let i = 0; i < 5; i++) {
      const error = await store.set('k', bytes(20_000), 60_000).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ValueTooLargeError);
      expect(error).toMatchObject({ code: 'E_TOO_LARGE', limit: 10_000 });
      expect((error as ValueTooLargeError).bytes).toBeGreaterThan(20_000);
      expect((error as Error).message).toMatch(
        /^set "k": the encoded value is \d+ bytes, more than any shared tier stores \(mc: 1000 bytes, cs: 10000 bytes\)/,
      );
    }
    // Never sent to either: mc got a tombstone over the older copy each time, cs a delete.
    expect([mc.calls.set, cs.calls.set]).toEqual([5, 0]);
    expect(values(mc)).toEqual([]);
    // Nobody serves the older value, nor keeps the refused one: not even this process.
    expect(await store.get('k')).toBeUndefined();
    expect(near.peek('k')).toBeUndefined();
    for (const name of ['near', 'mc', 'cs'])
      expect(stats(store, name)).toMatchObject({ errors: 0, circuit: 'closed', circuitOpened: 0 });
    expect(stats(store, 'cs').skipped).toBe(5);
    expect(errors).toEqual([]);

    expect(await store.set('j', 'ordinary', 60_000)).toBe(true);
    expect([mc.calls.set, cs.calls.set]).toEqual([6, 1]);
  });

  it('a tier that refuses a value at run time (tooLarge) is a skip: no error, breaker closed, its older copy deleted', async () => {
    // The far tier declares no limit but refuses values over 10,000 bytes.
    const { mc, cs, store, errors } = rig(
      {},
      { capabilities: { leases: 'consensus' }, refuseAboveBytes: 10_000 },
    );
    await store.connect();
    await store.set('k', 'older', 60_000);
    for (let i = 0; i < 5; i++)
      await expect(store.set('k', bytes(20_000), 60_000)).rejects.toMatchObject({
        code: 'E_TOO_LARGE',
        message: expect.stringContaining('(mc: 1000 bytes, cs: refused it)'),
      });
    expect(cs.calls.set).toBe(6);
    expect(stats(store, 'cs')).toMatchObject({ errors: 0, skipped: 5, circuit: 'closed' });
    expect(await store.get('k')).toBeUndefined();
    expect(errors).toEqual([]);
    expect(await store.set('j', 'ordinary', 60_000)).toBe(true);
    // The older value, a tombstone over it for each value too large for mc, the ordinary one.
    expect(mc.calls.set).toBe(7);
    expect(values(mc)).toHaveLength(1);
  });

  it('a probe the tier refuses for its size closes the circuit again (it answered)', async () => {
    const { clock, cs, store } = rig(
      {},
      { capabilities: { leases: 'consensus' }, refuseAboveBytes: 10_000 },
    );
    await store.connect();
    cs.fail('get', { times: 3 });
    for (let i = 0; i < 3; i++) await store.get(`miss${i}`);
    expect(stats(store, 'cs').circuit).toBe('open');
    clock.advance(1000);
    await expect(store.set('k', bytes(20_000))).rejects.toMatchObject({ code: 'E_TOO_LARGE' });
    expect(stats(store, 'cs').circuit).toBe('closed');
    expect(await store.set('j', 'ordinary')).toBe(true);
    expect(cs.calls.set).toBe(2);
  });

  it('setMany writes what fits and rejects naming the values no shared tier holds', async () => {
    const { mc, cs, store } = rig();
    await store.connect();
    await store.set('big', 'older', 60_000);
    const error = await store
      .setMany([
        { key: 'a', value: 'a', ttl: 60_000 },
        { key: 'mid', value: bytes(5000), ttl: 60_000 },
        { key: 'big', value: bytes(20_000), ttl: 60_000 },
      ])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValueTooLargeError);
    expect((error as Error).message).toMatch(
      /^setMany: 1 value more than any shared tier stores, "big": \d+ bytes \(mc: 1000 bytes, cs: 10000 bytes\); the others were written/,
    );
    expect(await store.getMany(['a', 'big'])).toEqual(['a', undefined]);
    expect((await store.get<Buffer>('mid'))?.length).toBe(5000);
    const farOnly = new TieredStore({ tiers: [mc.inner], clock: new ManualClock() });
    open.push(farOnly);
    expect(await farOnly.getMany(['a', 'mid', 'big'])).toEqual(['a', undefined, undefined]);
    expect(stats(store, 'cs').errors).toBe(0);
    void cs;
  });

  it('read-through: the caller gets its value, nothing is stored, an error event says why', async () => {
    const { clock, store, errors } = rig();
    await store.connect();
    const rt = new ReadThrough(store, { clock, onBackgroundError: () => undefined });
    const call = { ...HERD_DEFAULTS, ttl: 60_000, condition: undefined };
    const value = bytes(20_000);
    let calls = 0;
    const lookup = await rt.lookup('k', () => (calls++, value), call);
    expect(lookup).toEqual({ value, status: 'MISS', stored: false });
    expect(await store.get('k')).toBeUndefined();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'E_TIER_FAILED', tier: 'cs', operation: 'setEntry' });
    expect(errors[0].cause).toBeInstanceOf(ValueTooLargeError);
    expect(await store.setEntry('k', value, { ttl: 1000 })).toBe(false);
    expect(calls).toBe(1);
  });

  it('a far hit larger than a nearer tier holds is not backfilled into it', async () => {
    const { mc, cs, store } = rig();
    const farOnly = new TieredStore({ tiers: [cs.inner], clock: new ManualClock() });
    open.push(farOnly);
    const value = bytes(5000);
    await farOnly.set('k', value, 60_000);
    await store.connect();
    mc.resetCalls();
    expect(await store.get('k')).toEqual(value);
    await store.disconnect();
    expect(mc.calls.set + mc.calls.setMany).toBe(0);
    expect(stats(store, 'mc')).toMatchObject({ backfills: 0, skipped: 1 });
    expect(stats(store, 'near').backfills).toBe(1);
  });

  it('a chain of local tiers only has no shared limit to report', async () => {
    const store = new TieredStore({ tiers: [{ type: 'memory' }] });
    open.push(store);
    expect(await store.set('k', bytes(50_000))).toBe(true);
  });
});
