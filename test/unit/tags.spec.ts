import { createTieredStore } from '../../lib';
import { MapTier, type MapBackend } from '../support/map-tier';
import { ManualClock } from '../support/manual-clock';
import { setTimeout as sleep } from 'node:timers/promises';

describe('tags (store, in process)', () => {
  it('memory only', async () => {
    const clock = new ManualClock(1_000_000);
    const s = createTieredStore({ clock, tiers: [{ type: 'memory' }] });
    await s.set('a', 1, { ttl: 60_000, tags: ['x', 'y'] });
    await s.set('b', 2, { ttl: 60_000, tags: ['y'] });
    await s.set('c', 3, { ttl: 60_000 });
    expect(await s.get('a')).toBe(1);
    clock.advance(1);
    await sleep(5);
    await s.invalidateTags(['x']);
    expect(await s.get('a')).toBeUndefined();
    expect(await s.get('b')).toBe(2);
    expect(await s.getMany(['a', 'b', 'c'])).toEqual([undefined, 2, 3]);
    expect(await s.has('a')).toBe(false);
  });
  it('two instances over a shared backend', async () => {
    const clock = new ManualClock(1_000_000);
    const backend: MapBackend = new Map();
    const mk = () =>
      createTieredStore({ clock, tiers: [{ type: 'memory' }, new MapTier({ backend, clock })] });
    const a = mk();
    const b = mk();
    await a.connect();
    await b.connect();
    await a.set('k', 'v', { ttl: 60_000, tags: ['t'] });
    expect(await b.get('k')).toBe('v');
    clock.advance(1);
    await sleep(5);
    await a.invalidateTags(['t']);
    expect(await a.get('k')).toBeUndefined();
    // b trusts its cached times for tagRefreshMs
    clock.advance(1001);
    await sleep(5);
    expect(await b.get('k')).toBeUndefined();
    expect(await b.getMany(['k'])).toEqual([undefined]);
    await a.set('k', 'w', { ttl: 60_000, tags: ['t'] });
    expect(await b.get('k')).toBe('w');
    expect([...backend.keys()].filter((k) => k.includes('tag-'))).toHaveLength(1);
  });
  it('expire keeps grace entries stale', async () => {
    const clock = new ManualClock(1_000_000);
    const s = createTieredStore({ clock, tiers: [{ type: 'memory' }] });
    await s.setEntry('g', 'old', { ttl: 60_000, grace: 60_000, tags: ['p'] });
    await s.setEntry('n', 'old', { ttl: 60_000, tags: ['p'] });
    clock.advance(1);
    await sleep(5);
    await s.invalidateTags(['p'], { mode: 'expire' });
    expect(await s.get('g')).toBeUndefined();
    const e = await s.getEntry('g');
    expect(e?.value).toBe('old');
    expect(e!.staleAt).toBeLessThanOrEqual(clock.now());
    expect(await s.getEntry('n')).toBeUndefined();
    expect(() => s.increment('c', 1, { tags: ['p'] } as never)).rejects.toThrow(
      'counters cannot be tagged',
    );
  });
});
