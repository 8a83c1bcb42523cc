import { setTimeout as sleep } from 'node:timers/promises';
import { createTieredStore, type CacheEventMap, type CacheEventName } from '../../lib';
import { resolveHerdOptions } from '../../lib/herd/herd.options';
import { ReadThrough } from '../../lib/herd/read-through';
import { withFaults } from '../support/fault-tier';
import { eventually } from '../support/eventually';
import { ManualClock } from '../support/manual-clock';
import { MapTier } from '../support/map-tier';

/** The store's typed events, in one process over the memory tier and an in-process far tier. */
describe('store.events', () => {
  function chain(clock = new ManualClock(1_000_000)) {
    const far = withFaults(new MapTier({ clock, name: 'far' }));
    const store = createTieredStore({
      clock,
      tiers: [{ type: 'memory' }, far],
      circuitBreaker: { failures: 2, cooldownMs: 1000 },
    });
    const seen: Array<[CacheEventName, unknown]> = [];
    const listen = (...names: CacheEventName[]) => {
      for (const name of names)
        store.events.on(name, (e: CacheEventMap[typeof name]) => seen.push([name, e]));
    };
    return { clock, far, store, seen, listen };
  }

  it('tells hits and misses per tier, backfills and timed tier calls', async () => {
    const { store, seen, listen } = chain();
    await store.connect();
    await store.set('k', 1);
    listen('hit', 'miss', 'backfill', 'tier-call');
    expect(await store.get('k')).toBe(1);
    expect(seen).toEqual([['hit', { tier: 'memory' }]]);
    seen.length = 0;
    expect(await store.get('nope')).toBeUndefined();
    expect(seen.map(([n, e]) => [n, (e as { tier: string }).tier])).toEqual([
      ['miss', 'memory'],
      ['tier-call', 'far'],
      ['miss', 'far'],
    ]);
    const call = seen[1][1] as CacheEventMap['tier-call'];
    expect(call).toMatchObject({ op: 'get', ok: true });
    expect(call.seconds).toBeGreaterThanOrEqual(0);
    // A far hit is copied into the memory tier.
    const other = createTieredStore({ tiers: [{ type: 'memory' }] });
    expect(other.events.listened.hit).toBe(false);
    await store.getMany(['k']);
    seen.length = 0;
    await store.delete('k');
    await store.set('k2', 2);
    (store as unknown as { slots: Array<{ tier: { clear(): void } }> }).slots[0].tier.clear();
    expect(await store.get('k2')).toBe(2);
    expect(seen.filter(([n]) => n !== 'tier-call')).toEqual([
      ['miss', { tier: 'memory' }],
      ['hit', { tier: 'far' }],
      ['backfill', { tier: 'memory', entries: 1 }],
    ]);
  });

  it('tells failed calls, tier errors and the circuit opening and closing', async () => {
    const { clock, far, store, seen, listen } = chain();
    await store.connect();
    listen('tier-call', 'tier-error', 'circuit');
    far.fail('get');
    await store.get('a');
    await store.get('b');
    expect(seen.filter(([n]) => n === 'tier-call')).toEqual([
      ['tier-call', expect.objectContaining({ tier: 'far', op: 'get', ok: false })],
      ['tier-call', expect.objectContaining({ tier: 'far', op: 'get', ok: false })],
    ]);
    expect(seen.filter(([n]) => n === 'tier-error').map(([, e]) => (e as Error).message)).toEqual([
      expect.stringContaining('far'),
      expect.stringContaining('far'),
    ]);
    expect(seen.filter(([n]) => n === 'circuit')).toEqual([
      ['circuit', { tier: 'far', state: 'open' }],
    ]);
    far.heal();
    clock.advance(1001);
    await sleep(5);
    await store.get('c');
    expect(seen.filter(([n]) => n === 'circuit').at(-1)).toEqual([
      'circuit',
      { tier: 'far', state: 'closed' },
    ]);
  });

  it('a listener that throws is reported once and breaks nothing', async () => {
    const { store } = chain();
    const reports: Array<[string, unknown]> = [];
    store.on('listener-error', (name: string, err: unknown) => reports.push([name, err]));
    let calls = 0;
    const off = store.events.on('hit', () => {
      calls++;
      throw new Error('listener bug');
    });
    await store.set('k', 1);
    expect(await store.get('k')).toBe(1);
    expect(await store.get('k')).toBe(1);
    expect(calls).toBe(2);
    expect(reports).toEqual([['hit', new Error('listener bug')]]);
    off();
    expect(store.events.listened.hit).toBe(false);
    expect(await store.get('k')).toBe(1);
    expect(calls).toBe(2);
  });

  it('refuses unknown events and listeners that are not functions', () => {
    const { store } = chain();
    expect(() => store.events.on('hits' as never, () => undefined)).toThrow(
      'unknown cache event "hits": one of "hit", "miss"',
    );
    expect(() => store.events.on('hit', 'x' as never)).toThrow(
      'a listener of "hit" must be a function',
    );
  });

  it('tells read-through origin calls, leases, stale serves and failed refreshes', async () => {
    const clock = new ManualClock(1_000_000);
    const store = createTieredStore({ clock, tiers: [{ type: 'memory' }, new MapTier({ clock })] });
    await store.connect();
    const seen: Array<[string, unknown]> = [];
    for (const name of ['origin', 'lease', 'stale', 'refresh-failed'] as const)
      store.events.on(name, (e) => seen.push([name, e]));
    const rt = new ReadThrough(store, {
      clock,
      events: store.events,
      onBackgroundError: () => undefined,
    });
    const call = {
      ...resolveHerdOptions({ grace: 60_000 }, undefined, 'test', []),
      ttl: 1000,
      condition: undefined,
    };
    await rt.lookup('k', async () => 'v1', call);
    expect(seen).toEqual([
      ['lease', { key: 'k', outcome: 'acquired' }],
      ['origin', { key: 'k', seconds: expect.any(Number), outcome: 'ok' }],
    ]);
    seen.length = 0;
    clock.advance(1001);
    await sleep(5);
    const failing = async (): Promise<string> => {
      throw new Error('origin down');
    };
    expect((await rt.lookup('k', failing, call)).status).toBe('STALE');
    await eventually(() => seen.length >= 4, 10_000);
    expect(seen).toEqual([
      ['stale', { key: 'k' }],
      ['lease', { key: 'k', outcome: 'acquired' }],
      ['origin', { key: 'k', seconds: expect.any(Number), outcome: 'error' }],
      ['refresh-failed', { key: 'k', error: new Error('origin down') }],
    ]);
  });
});
