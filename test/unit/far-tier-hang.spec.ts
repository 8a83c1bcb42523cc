import { performance } from 'node:perf_hooks';
import type { TierError } from '../../lib/errors';
import { HERD_DEFAULTS } from '../../lib/herd/herd.options';
import { ReadThrough } from '../../lib/herd/read-through';
import { TieredStore } from '../../lib/store/tiered-store';
import { MemoryTier } from '../../lib/tiers/memory/memory.tier';
import { eventually } from '../support/eventually';
import { withFaults, type FaultTier } from '../support/fault-tier';
import { ManualClock } from '../support/manual-clock';
import { MapTier } from '../support/map-tier';

/** `promise`'s value, or `'still pending'` when it has not settled within `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | 'still pending'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'still pending'>(
    (r) => (timer = setTimeout(() => r('still pending'), ms)),
  );
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

const settle = () => new Promise((r) => setImmediate(r));

describe('a far tier that hangs', () => {
  const open: Array<{ store: TieredStore; faults: FaultTier<unknown>[] }> = [];

  /** memory → mid (atomic leases: the lease tier) → far (no leases, additive counters). */
  function rig(farCaps: Partial<MapTier['capabilities']> = {}, midCaps = {}) {
    const clock = new ManualClock();
    const near = withFaults(new MemoryTier({ type: 'memory' }, { clock, name: 'near' }));
    const mid = withFaults(new MapTier({ name: 'mid', clock, capabilities: midCaps }));
    const far = withFaults(
      new MapTier({
        name: 'far',
        clock,
        capabilities: { leases: false, counters: 'additive', ...farCaps },
      }),
    );
    const store = new TieredStore({
      tiers: [near, mid, far],
      clock,
      generationRefreshMs: 3_600_000,
      circuitBreaker: { cooldownMs: 10_000 },
    });
    const errors: TierError[] = [];
    store.on('error', (e: TierError) => errors.push(e));
    open.push({ store, faults: [near, mid, far] as FaultTier<unknown>[] });
    const rt = new ReadThrough(store, { clock, onBackgroundError: () => undefined });
    const call = { ...HERD_DEFAULTS, ttl: 60_000, condition: undefined };
    let origin = 0;
    const getOrSet = (key: string) => rt.lookup(key, () => `v${++origin}`, call);
    return { clock, near, mid, far, store, errors, getOrSet, origin: () => origin };
  }

  afterEach(async () => {
    for (const { store, faults } of open.splice(0)) {
      for (const f of faults) f.heal();
      await store.disconnect();
    }
  });

  it('costs callers one timeout per breaker window, not one (or two) per miss', async () => {
    const TIMEOUT = 1000;
    const { clock, far, store, getOrSet } = rig();
    await store.connect();
    far.resetCalls().timeOut('*', TIMEOUT);
    const elapsed: number[] = [];
    for (let i = 0; i < 6; i++) {
      const t0 = performance.now();
      expect(await getOrSet(`miss${i}`)).toMatchObject({ status: 'MISS', stored: true });
      elapsed.push(performance.now() - t0);
    }
    // The first miss waited for the far read to time out; that timeout opened the circuit, so
    // its write and every later miss skipped the far tier.
    expect(far.calls.get).toBe(1);
    expect(far.calls.set).toBe(0);
    expect(elapsed[0]).toBeGreaterThanOrEqual(TIMEOUT * 0.9);
    for (const ms of elapsed.slice(1)) expect(ms).toBeLessThan(TIMEOUT);
    expect(store.stats()[2]).toMatchObject({ errors: 1, circuit: 'open', circuitOpened: 1 });

    // One probe per cooldown: one more timeout, then open again.
    clock.advance(10_000);
    await getOrSet('probe');
    await getOrSet('after-probe');
    expect(far.calls.get).toBe(2);
    expect(store.stats()[2]).toMatchObject({ errors: 2, circuit: 'open', circuitOpened: 2 });
  });

  it('a read-through miss answers once the lease tier has the value; the far write goes on in the background', async () => {
    const { mid, far, store, errors, getOrSet } = rig();
    await store.connect();
    far.hang('set');
    const answer = await within(getOrSet('k'), 5000);
    expect(answer).toMatchObject({ value: 'v1', status: 'MISS', stored: true });
    expect(far.pending('set')).toBe(1);
    // Other processes poll the lease tier: it has the value already.
    const midOnly = new TieredStore({ tiers: [mid.inner], clock: new ManualClock() });
    expect(await midOnly.get('k')).toBe('v1'); // (not disconnected: it would close `mid`)

    // A delete made now still wins on the far tier: it waits for the write there.
    const deleted = store.delete('k');
    await settle();
    expect(far.calls.delete).toBe(0);
    // disconnect() waits for the background write.
    let closed = false;
    const closing = store.disconnect().then(() => (closed = true));
    await settle();
    expect(closed).toBe(false);
    far.release('set');
    await deleted;
    await closing;
    expect(far.calls.delete).toBe(1);
    expect((far.inner as MapTier).size).toBe(1); // the generation only
    expect(errors).toEqual([]);
  });

  it('a background write that fails is reported', async () => {
    const { far, store, errors, getOrSet } = rig();
    await store.connect();
    far.hang('set');
    expect(await within(getOrSet('k'), 5000)).toMatchObject({ stored: true });
    far.release('set', new Error('write timed out'));
    expect(
      await eventually(
        () => errors.some((e) => e.tier === 'far' && e.operation === 'setEntry'),
        5000,
      ),
    ).toBe(true);
  });

  it('without a lease tier, a miss waits for the nearest shared tier only', async () => {
    const { mid, far, store, getOrSet } = rig({}, { leases: false });
    await store.connect();
    far.hang('set');
    expect(await within(getOrSet('k'), 5000)).toMatchObject({ status: 'MISS', stored: true });
    expect(far.pending('set')).toBe(1);
    mid.hang('set');
    const pending = getOrSet('j');
    expect(await within(pending, 200)).toBe('still pending');
    mid.release('set');
    expect(await within(pending, 5000)).toMatchObject({ stored: true });
    far.release('set');
  });

  it('plain set still waits for every tier', async () => {
    const { far, store } = rig();
    await store.connect();
    far.hang('set');
    const write = store.set('k', 'v');
    expect(await within(write, 200)).toBe('still pending');
    far.release('set');
    expect(await write).toBe(true);
  });
});
