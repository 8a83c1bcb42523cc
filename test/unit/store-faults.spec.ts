import { TieredCacheError, TierError } from '../../lib/errors';
import { TieredStore } from '../../lib/store/tiered-store';
import type { TieredStoreOptions } from '../../lib/store/tiered-store.options';
import { MemoryTier } from '../../lib/tiers/memory/memory.tier';
import { localRecord, type Tier } from '../../lib/tiers/tier.interface';
import { eventually } from '../support/eventually';
import { FaultTier, withFaults, type LocalFaultTier } from '../support/fault-tier';
import { ManualClock } from '../support/manual-clock';
import { MapTier, type MapBackend } from '../support/map-tier';
import { describeTierContract } from '../support/tier-contract';

/**
 * `promise`'s value, or `'still pending'` when it has not settled within `ms` (the faults it is
 * measured against last a minute or forever, so the bound is generous, not tight).
 */
function within<T>(promise: Promise<T>, ms = 1000): Promise<T | 'still pending'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'still pending'>(
    (r) => (timer = setTimeout(() => r('still pending'), ms)),
  );
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Lets every pending callback run (tier calls the store started in the background). */
const settle = () => new Promise((r) => setImmediate(r));

// ------------------------------------------------------------ the test tiers are tiers

const contractClock = new ManualClock();
const mapBackend: MapBackend = new Map();
describeTierContract('map tier (test/support)', {
  create: () => new MapTier({ clock: contractClock, backend: mapBackend }),
  holder: (s) => Buffer.from(s),
  clock: contractClock,
  builtIn: false,
});
describeTierContract('fault tier over a map tier, no faults', {
  create: () =>
    withFaults(new MapTier({ clock: contractClock, backend: mapBackend })) as Tier<unknown>,
  holder: (s) => Buffer.from(s),
  clock: contractClock,
  builtIn: false,
});
describeTierContract('fault tier over the memory tier, no faults', {
  create: () =>
    withFaults(new MemoryTier({ type: 'memory' }, { clock: contractClock })) as Tier<unknown>,
  holder: (s) => localRecord(s),
  clock: contractClock,
});

describe('fault tier controls', () => {
  it('keeps the wrapped tier’s name, kind, capabilities and optional methods', () => {
    const map = new MapTier({ name: 'm' });
    const fault = withFaults(map);
    expect([fault.name, fault.kind, fault.capabilities]).toEqual(['m', 'map', map.capabilities]);
    expect(fault.capabilities).toBe(map.capabilities);
    expect(typeof fault.add).toBe('function');
    expect('peek' in fault).toBe(false);

    const memory = withFaults(new MemoryTier({ type: 'memory' }, {}), { name: 'near' });
    expect(memory.name).toBe('near');
    expect(memory.capabilities.local).toBe(true);
    expect([typeof memory.peek, typeof memory.put, typeof memory.clear]).toEqual([
      'function',
      'function',
      'function',
    ]);

    const bare = new MapTier();
    const withoutLeases = withFaults({
      ...pick(bare),
      capabilities: { ...bare.capabilities, leases: false, counters: false },
    } as Tier<Buffer>);
    expect([withoutLeases.add, withoutLeases.deleteIf, withoutLeases.increment]).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
  });

  it('fails chosen operations, a number of times or until healed, counting every call', async () => {
    const fault = withFaults(new MapTier());
    const boom = new Error('boom');
    fault.fail('get', { error: boom, times: 2 }).fail(['set', 'delete']);
    await expect(fault.get('k')).rejects.toBe(boom);
    await expect(fault.get('k')).rejects.toBe(boom);
    await expect(fault.get('k')).resolves.toBeUndefined();
    await expect(fault.set('k', Buffer.from('v'), 0)).rejects.toThrow('map: injected set failure');
    expect(await fault.inner.get('k')).toBeUndefined(); // a failed call never reaches it
    fault.heal('set');
    await fault.set('k', Buffer.from('v'), 0);
    await expect(fault.delete('k')).rejects.toThrow('injected delete failure');
    fault.heal();
    expect(await fault.delete('k')).toBe(true);
    expect(fault.calls).toMatchObject({ get: 3, set: 2, delete: 2, getMany: 0 });
    fault.resetCalls();
    expect(fault.calls.get).toBe(0);

    const local = withFaults(new MemoryTier({ type: 'memory' }, {}));
    local.fail('peek', { error: (op: string) => new Error(`no ${op}`) });
    expect(() => local.peek('k')).toThrow('no peek');
    expect(local.calls.peek).toBe(1);
  });

  it('delays and hangs chosen operations until released or healed', async () => {
    const fault = withFaults(new MapTier());
    fault.delay('get', 60_000).hang('set');
    const read = fault.get('k');
    const write = fault.set('k', Buffer.from('v'), 0);
    await settle();
    expect(fault.pending()).toBe(1);
    expect(fault.pending('get')).toBe(0);
    expect(await within(read, 50)).toBe('still pending');
    fault.release('set');
    await write;
    expect(await fault.inner.get('k')).toEqual(Buffer.from('v'));
    fault.heal('get'); // a delayed call goes on at once, and reads what is there by then
    expect(await read).toEqual(Buffer.from('v'));
    fault.hang('delete');
    const del = fault.delete('k');
    await settle();
    fault.release('delete', new Error('gave up'));
    await expect(del).rejects.toThrow('gave up');
    expect(await fault.inner.get('k')).toEqual(Buffer.from('v'));
  });
});

/** A plain object with the tier methods of `tier`, bound to it (without add, deleteIf, increment). */
function pick(tier: MapTier): Omit<Tier<Buffer>, 'capabilities'> {
  return {
    name: tier.name,
    kind: tier.kind,
    connect: () => tier.connect(),
    get: (k) => tier.get(k),
    getMany: (k) => tier.getMany(k),
    set: (k, v, t) => tier.set(k, v, t),
    setMany: (e) => tier.setMany(e),
    delete: (k) => tier.delete(k),
    deleteMany: (k) => tier.deleteMany(k),
    close: () => tier.close(),
  };
}

// ------------------------------------------------------------ the store under faults

describe('TieredStore failure handling (fault-injected tiers)', () => {
  const open: Array<{ store: TieredStore; faults: FaultTier<unknown>[] }> = [];

  interface Rig {
    clock: ManualClock;
    near: LocalFaultTier;
    far: FaultTier<Buffer>;
    store: TieredStore;
    errors: TierError[];
  }

  /** A store over a fault-wrapped memory tier (`near`) and a fault-wrapped map tier (`far`). */
  function rig(options: Partial<TieredStoreOptions> = {}): Rig {
    const clock = new ManualClock();
    const near = withFaults(new MemoryTier({ type: 'memory' }, { clock, name: 'near' }));
    const far = withFaults(new MapTier({ name: 'far', clock }));
    const store = new TieredStore({
      tiers: [near, far],
      clock,
      // Generation reads (an increment on the far tier) stay out of the way of the counts below.
      generationRefreshMs: 3_600_000,
      circuitBreaker: { failures: 3, cooldownMs: 1000 },
      ...options,
    });
    const errors: TierError[] = [];
    store.on('error', (e: TierError) => errors.push(e));
    open.push({ store, faults: [near, far] as FaultTier<unknown>[] });
    return { clock, near, far, store, errors };
  }

  const stats = (store: TieredStore, name: string) => store.stats().find((s) => s.name === name)!;

  afterEach(async () => {
    for (const { store, faults } of open.splice(0)) {
      for (const f of faults) f.heal();
      await store.disconnect();
    }
  });

  it('a failing far tier is a miss for reads, with an error event per failure', async () => {
    const { far, store, errors } = rig();
    await store.connect();
    await store.set('near', 'held');
    far.fail(['get', 'getMany']);
    expect(await store.get('k')).toBeUndefined();
    expect(await store.getMany(['a', 'b'])).toEqual([undefined, undefined]);
    expect(errors).toHaveLength(2);
    for (const e of errors) {
      expect(e).toBeInstanceOf(TierError);
      expect(e.code).toBe('E_TIER_FAILED');
      expect(e.tier).toBe('far');
    }
    expect(errors.map((e) => [e.operation, e.key])).toEqual([
      ['get', 'k'],
      ['getMany', undefined],
    ]);
    expect(errors[0].message).toBe('far: get "k" failed: far: injected get failure');
    expect(stats(store, 'far').errors).toBe(2);
    // A near hit never asks the far tier.
    const asked = far.calls.get;
    expect(await store.get('near')).toBe('held');
    expect(far.calls.get).toBe(asked);
  });

  it('a write that one tier accepted resolves true', async () => {
    const { near, far, store, errors } = rig();
    await store.connect();
    far.fail(['set', 'setMany']);
    expect(await store.set('k', 'v')).toBe(true);
    expect(await store.get('k')).toBe('v');
    await expect(store.setMany([{ key: 'm', value: 1 }])).resolves.toBeUndefined();
    expect(errors.map((e) => `${e.tier} ${e.operation}`)).toEqual(['far set', 'far setMany']);

    far.heal();
    near.fail('set');
    expect(await store.set('j', 'w')).toBe(true);
    expect(await store.get('j')).toBe('w'); // from the far tier
    expect(far.calls.get).toBe(1);
    expect(errors.map((e) => `${e.tier} ${e.operation}`)).toEqual([
      'far set',
      'far setMany',
      'near set',
    ]);
  });

  it('a write or delete no tier accepted rejects with E_NOT_ACCEPTED', async () => {
    const { near, far, store, errors } = rig();
    await store.connect();
    near.fail(['set', 'setMany', 'delete']);
    far.fail(['set', 'setMany', 'delete']);
    const error = await store.set('k', 'v').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TieredCacheError);
    expect(error).toMatchObject({
      code: 'E_NOT_ACCEPTED',
      message: 'set "k": no tier accepted the write (near: failed, far: failed)',
    });
    await expect(store.setMany([{ key: 'm', value: 1 }])).rejects.toMatchObject({
      code: 'E_NOT_ACCEPTED',
    });
    await expect(store.delete('k')).rejects.toMatchObject({ code: 'E_NOT_ACCEPTED' });
    expect(errors.every((e) => e.code === 'E_TIER_FAILED')).toBe(true);
    expect(errors.length).toBeGreaterThanOrEqual(6);
  });

  it('opens the circuit after `failures` consecutive failures, skips the tier, probes after `cooldownMs`', async () => {
    const { clock, far, store } = rig();
    await store.connect();
    far.resetCalls();
    far.fail('get');
    for (let i = 0; i < 3; i++) expect(await store.get('miss')).toBeUndefined();
    expect(far.calls.get).toBe(3);
    expect(stats(store, 'far')).toMatchObject({
      errors: 3,
      skipped: 0,
      circuit: 'open',
      circuitOpened: 1,
    });

    // Open: reads and writes skip the far tier; the near tier still serves.
    expect(await store.get('miss')).toBeUndefined();
    expect(await store.set('k', 'v')).toBe(true);
    expect(await store.get('k')).toBe('v');
    clock.advance(999);
    expect(await store.get('miss')).toBeUndefined();
    expect(far.calls.get).toBe(3);
    expect(far.calls.set).toBe(0);
    expect(stats(store, 'far').skipped).toBe(3);

    // After the cooldown one probe goes through; it fails: open again.
    clock.advance(1);
    expect(stats(store, 'far').circuit).toBe('half-open');
    expect(await store.get('miss')).toBeUndefined();
    expect(far.calls.get).toBe(4);
    expect(stats(store, 'far')).toMatchObject({ circuit: 'open', circuitOpened: 2 });
    expect(await store.get('miss')).toBeUndefined();
    expect(far.calls.get).toBe(4);

    // Next probe succeeds: closed, and every call goes through again.
    clock.advance(1000);
    far.heal();
    expect(await store.get('miss')).toBeUndefined();
    expect(far.calls.get).toBe(5);
    expect(stats(store, 'far').circuit).toBe('closed');
    expect(await store.get('miss2')).toBeUndefined();
    expect(far.calls.get).toBe(6);
    expect(stats(store, 'far')).toMatchObject({ skipped: 4, errors: 4, circuitOpened: 2 });
  });

  it('only one probe goes through while the circuit is half-open', async () => {
    const { clock, far, store } = rig();
    await store.connect();
    far.fail('get');
    for (let i = 0; i < 3; i++) await store.get('miss');
    clock.advance(1000);
    far.heal().hang('get');
    far.resetCalls();
    const probe = store.get('probe');
    await settle();
    expect(await store.get('other')).toBeUndefined(); // skipped while the probe is out
    expect(far.calls.get).toBe(1);
    far.release();
    expect(await probe).toBeUndefined();
    expect(stats(store, 'far').circuit).toBe('closed');
  });

  it('a delayed far tier does not delay a near hit', async () => {
    const { far, store } = rig();
    await store.connect();
    await store.set('k', 'v');
    await store.setMany([{ key: 'j', value: 'w' }]);
    far.delay(['get', 'getMany'], 60_000);
    const slow = store.get('miss');
    expect(await within(store.get('k'))).toBe('v');
    expect(await within(store.getMany(['k', 'j']))).toEqual(['v', 'w']);
    expect(await within(slow, 50)).toBe('still pending');
    expect(far.calls.get).toBe(1);
    expect(far.calls.getMany).toBe(0);
    far.heal();
    expect(await slow).toBeUndefined();
  });

  it('a hanging far tier on write does not block reads of the near tier', async () => {
    const { far, store, errors } = rig();
    await store.connect();
    far.hang('set');
    const entries = (far.inner as MapTier).size;
    let settled = false;
    const write = store.set('k', 'v').finally(() => (settled = true));
    await settle();
    expect(far.pending('set')).toBe(1);
    expect(await within(store.get('k'))).toBe('v');
    expect(far.calls.get).toBe(0);
    expect(settled).toBe(false);
    far.release('set');
    expect(await write).toBe(true);
    expect((far.inner as MapTier).size).toBe(entries + 1);

    // Released with an error: the write another tier accepted still resolves true.
    far.hang('set');
    const failing = store.set('k', 'v2');
    await settle();
    far.release('set', new Error('timed out'));
    expect(await failing).toBe(true);
    expect(errors.map((e) => e.message)).toEqual(['far: set "k" failed: timed out']);
  });

  it('a write held up on one tier (a retry, a reconnect) still lands before a later delete', async () => {
    const { far, store } = rig();
    await store.connect();
    await store.set('other', 'x', 60_000);
    far.hang('set');
    const write = store.set('k', 'old', 60_000);
    await settle();
    // The delete is called after the set: on the far tier it waits for the set to settle.
    const deleted = store.delete('k');
    // Other keys are not held up.
    expect(await within(store.delete('other'))).toBe(true);
    expect(await within(deleted, 100)).toBe('still pending');
    far.release('set');
    expect(await write).toBe(true);
    expect(await deleted).toBe(true);
    const fresh = new TieredStore({ tiers: [far.inner as MapTier], clock: new ManualClock() });
    expect(await fresh.get('k')).toBeUndefined();
    expect(await fresh.get('other')).toBeUndefined();
  });

  it('backfills the near tier after a far hit', async () => {
    const { near, far, store } = rig();
    await store.connect();
    await store.set('k', { a: 1 }, 60_000);
    near.clear();
    near.resetCalls();
    far.resetCalls();
    expect(await store.get('k')).toEqual({ a: 1 });
    expect(far.calls.get).toBe(1);
    expect(near.calls.put + near.calls.set).toBe(1);
    expect(stats(store, 'near').backfills).toBe(1);
    expect(stats(store, 'far').hits).toBe(1);
    // The next read is a near hit.
    expect(await store.get('k')).toEqual({ a: 1 });
    expect(far.calls.get).toBe(1);
    expect(stats(store, 'near').hits).toBe(1);
  });

  it('backfills a nearer shared tier in the background; its failure is an event, not a failed read', async () => {
    const clock = new ManualClock();
    const middle = withFaults(new MapTier({ name: 'middle', clock }));
    const far = withFaults(new MapTier({ name: 'far', clock }));
    const store = new TieredStore({ tiers: [middle, far], clock, generationRefreshMs: 3_600_000 });
    const errors: TierError[] = [];
    store.on('error', (e: TierError) => errors.push(e));
    open.push({ store, faults: [middle, far] as FaultTier<unknown>[] });
    await store.connect();
    middle.fail('set', { times: 1 });
    expect(await store.set('k', 'v')).toBe(true); // the middle tier missed it
    middle.resetCalls();
    expect(await store.get('k')).toBe('v');
    // A nearer shared tier is backfilled with `add` (a delete's tombstone there would win).
    expect(await eventually(() => middle.calls.add === 1, 2000)).toBe(true);
    expect(middle.calls.set + middle.calls.setMany).toBe(0);
    // Once it landed, reads are answered by the middle tier.
    const fromMiddle = async () => {
      far.resetCalls();
      return (await store.get('k')) === 'v' && far.calls.get === 0;
    };
    expect(await eventually(fromMiddle, 2000)).toBe(true);

    // A backfill that fails: reported, and the read still answers.
    middle.fail('set');
    middle.fail('add');
    expect(await store.set('j', 'w')).toBe(true);
    expect(await store.get('j')).toBe('w');
    expect(
      await eventually(
        () => errors.some((e) => e.tier === 'middle' && e.operation === 'backfill'),
        2000,
      ),
    ).toBe(true);
  });

  it('a tier whose connect() failed is connected again on use', async () => {
    // (Each reported failure counts against the circuit: keep it closed throughout.)
    const { near, far, store, errors } = rig({ circuitBreaker: { failures: 10 } });
    far.fail('connect', { times: 2 });
    await expect(store.connect()).resolves.toBeUndefined();
    expect(errors.map((e) => `${e.tier} ${e.operation}`)).toEqual(['far connect']);
    expect(far.calls.connect).toBe(1);
    // The next operation tries again: it fails once more (a miss), then the tier connects.
    near.clear();
    expect(await store.get('x')).toBeUndefined();
    expect(far.calls.connect).toBe(2);
    // (The read also started a generation refresh, which shares that connect attempt.)
    const reported = errors.map((e) => `${e.tier} ${e.operation}`);
    expect(reported).toContain('far get');
    expect(
      reported.filter((r) => !['far connect', 'far get', 'far generation'].includes(r)),
    ).toEqual([]);
    expect(await store.set('k', 'v')).toBe(true);
    expect(far.calls.connect).toBe(3);
    expect(far.calls.set).toBe(1);
    near.clear();
    expect(await store.get('k')).toBe('v'); // from the far tier, connected at last
    expect(far.calls.connect).toBe(3);
  });

  it('connect({ failFast: true }) rejects with the failure of a tier', async () => {
    const { far, store } = rig();
    far.fail('connect', { error: new Error('refused') });
    await expect(store.connect({ failFast: true })).rejects.toThrow('refused');
  });

  it('delete and deleteMany resolve true only when something was deleted', async () => {
    const { near, far, store, errors } = rig();
    await store.connect();
    expect(await store.delete('missing')).toBe(false);
    await store.set('k', 'v');
    expect(await store.delete('k')).toBe(true);
    expect(await store.get('k')).toBeUndefined();
    expect(await store.delete('k')).toBe(false);

    await store.setMany([
      { key: 'a', value: 1 },
      { key: 'b', value: 2 },
    ]);
    expect(await store.deleteMany(['a', 'missing'])).toBe(true);
    expect(await store.deleteMany(['a', 'missing'])).toBe(false);
    expect(await store.getMany(['a', 'b'])).toEqual([undefined, 2]);

    // Held by one tier only: still deleted.
    await store.set('far-only', 1);
    near.clear();
    expect(await store.delete('far-only')).toBe(true);
    far.fail('set', { times: 1 });
    await store.set('near-only', 1);
    expect(await store.delete('near-only')).toBe(true);
    expect(errors.map((e) => `${e.tier} ${e.operation}`)).toEqual(['far set']);

    // A tier that fails the delete: the store cannot tell it is gone everywhere.
    await store.set('d', 1);
    far.fail('delete');
    expect(await store.delete('d')).toBe(false);
    expect(errors.some((e) => e.tier === 'far' && e.operation === 'delete')).toBe(true);
  });
});

describe('the counters option', () => {
  const atomic = () => new MapTier({ name: 'atomic' });
  const additive = () =>
    new MapTier({ name: 'additive', capabilities: { counters: 'additive', leases: 'consensus' } });

  it('counts on the farthest shared tier by default, on the farthest atomic one with "atomic"', async () => {
    for (const [counters, expected] of [
      [undefined, 'additive'],
      ['farthest', 'additive'],
      ['atomic', 'atomic'],
    ] as const) {
      const [a, b] = [withFaults(atomic()), withFaults(additive())];
      const store = new TieredStore({ tiers: [a, b], counters, generationRefreshMs: 3_600_000 });
      await store.connect();
      a.resetCalls();
      b.resetCalls();
      expect(await store.increment('n')).toBe(1);
      expect({ atomic: a.calls.increment, additive: b.calls.increment }).toEqual({
        atomic: expected === 'atomic' ? 1 : 0,
        additive: expected === 'additive' ? 1 : 0,
      });
      // The generation stays on the farthest shared tier that counts.
      await store.clear();
      expect(b.calls.increment).toBe(expected === 'additive' ? 2 : 1);
      await store.disconnect();
    }
  });

  it('rejects unknown values, and "atomic" without a tier with atomic counters', () => {
    expect(() => new TieredStore({ tiers: [atomic()], counters: 'exact' as never })).toThrow(
      `counters: must be 'farthest' or 'atomic', got "exact"`,
    );
    expect(() => new TieredStore({ tiers: [additive()], counters: 'atomic' })).toThrow(
      /^counters: 'atomic' needs a shared tier whose counters are atomic \(memcached\); none of additive has them$/,
    );
  });
});
