import { TieredStore } from '../../lib/store/tiered-store';
import { eventually } from '../support/eventually';
import { withFaults } from '../support/fault-tier';
import { ManualClock } from '../support/manual-clock';
import { MapTier } from '../support/map-tier';

/**
 * A write or delete a shared tier missed (it failed, or its circuit was open) must not let that
 * tier serve the older value once it answers again: the key is a miss there until the store has
 * deleted it there (replayed as soon as the tier answers anything).
 */
describe('writes a tier missed while failing', () => {
  function chain() {
    const clock = new ManualClock();
    const nearBackend = new Map();
    const nearMap = new MapTier({ name: 'near', clock, backend: nearBackend });
    /** The near tier loses `key` (evicted, restarted). */
    const nearLoses = (key: string) => {
      for (const k of [...nearBackend.keys()]) if (k.endsWith(`:${key}`)) nearBackend.delete(k);
    };
    const backend = new Map();
    const farMap = new MapTier({
      name: 'far',
      clock,
      backend,
      capabilities: { leases: 'consensus', counters: 'additive' },
    });
    /** Whether the far tier holds `key` (under its final key). */
    const farHolds = (key: string) => [...backend.keys()].some((k) => k.endsWith(`:${key}`));
    const near = withFaults(nearMap);
    const far = withFaults(farMap);
    const store = new TieredStore({
      tiers: [near, far],
      clock,
      generationRefreshMs: 3_600_000,
      circuitBreaker: { failures: 1, cooldownMs: 1000 },
    });
    const errors: Error[] = [];
    store.on('error', (e: Error) => errors.push(e));
    return { store, nearLoses, far, farHolds, clock, errors };
  }

  it.each(['delete', 'set'] as const)(
    'a %s the far tier missed: the older value is never served from it, and is deleted there once it answers',
    async (mutation) => {
      const { store, nearLoses, far, farHolds, clock } = chain();
      await store.connect();
      await store.set('k', 'older');
      expect(farHolds('k')).toBe(true);
      far.fail('*');
      // The first fails; the second is skipped, the circuit being open.
      for (let i = 0; i < 2; i++) {
        if (mutation === 'delete') await store.delete('k');
        else await store.set('k', `newer ${i}`);
      }
      expect(store.stats()[1].circuit).toBe('open');
      // The circuit is open now; the far tier comes back after the cooldown.
      far.heal();
      clock.advance(1500);
      // The near tier loses the key (evicted, restarted, or it was deleted there).
      nearLoses('k');
      expect(await store.get('k')).toBeUndefined();
      expect(await store.getMany(['k', 'other'])).toEqual([undefined, undefined]);
      // The first answer of the far tier replays the missed delete there.
      await store.set('other', 1);
      expect(await eventually(() => !farHolds('k'), 5000)).toBe(true);
      // And once it has, the key behaves as any other.
      await store.set('k', 'newest');
      nearLoses('k');
      expect(await store.get('k')).toBe('newest');
      await store.disconnect();
    },
  );
});
