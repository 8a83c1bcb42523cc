import { createTieredStore } from '../../lib';
import { systemClock } from '../../lib/clock';
import { CacheEvents } from '../../lib/store/cache-events';
import { TierChain } from '../../lib/store/tier-chain';

/** A memcached marked `local: true`: kept coherent like the memory tier, no shared role. */
describe('memcached local: true (a per-host tier)', () => {
  const chain = (tiers: unknown[]) =>
    new TierChain({
      tiers: tiers as never,
      keyFn: false,
      circuitBreaker: undefined,
      counters: undefined,
      clock: systemClock,
      report: () => undefined,
      events: new CacheEvents(() => undefined),
    });
  const perHost = { type: 'memcached', servers: ['127.0.0.1:1'], local: true, name: 'host' };
  const shared = { type: 'memcached', servers: ['127.0.0.1:2'], name: 'shared' };

  it('holds no lease, counter or generation, and gets the local cap (5 s)', () => {
    const c = chain([{ type: 'memory' }, perHost, shared]);
    expect([c.lease?.name, c.authority?.name, c.counter?.name]).toEqual([
      'shared',
      'shared',
      'shared',
    ]);
    expect(c.slots.map((s) => [s.name, s.perHost, s.cap])).toEqual([
      ['memory', false, 5000],
      ['host', true, 5000],
      ['shared', false, 0],
    ]);
    expect(c.writeBound).toBe(2);
  });

  it('is the farthest tier alone: then nothing holds leases or the generation', () => {
    const c = chain([{ type: 'memory' }, perHost]);
    expect([c.lease, c.authority, c.counter]).toEqual([undefined, undefined, undefined]);
  });

  it('keeps a cap given explicitly', () => {
    expect(chain([{ ...perHost, ttl: 1000 }, shared]).slots[0].cap).toBe(1000);
  });

  it.each([
    [{ ...perHost, local: 'yes' }, 'tiers[0].local: yes is not true or false'],
    [{ ...perHost, locl: true }, 'tiers[0].locl: unknown option (did you mean "local"?)'],
  ])('%j: %s', (tier, message) => {
    expect(() => createTieredStore({ tiers: [tier as never] })).toThrow(message);
  });
});
