import {
  InvalidOptionError,
  MemcachedError,
  ValueTooLargeError,
  failureOf,
} from '../../lib/errors';
import { CircuitBreaker } from '../../lib/store/circuit-breaker';
import { FAILED, TierSlot } from '../../lib/store/tier-slot';
import { createTier } from '../../lib/tiers/create-tier';
import { CacheEvents } from '../../lib/store/cache-events';
import type { Tier } from '../../lib/tiers/tier.interface';
import { ManualClock } from '../support/manual-clock';
import { MapTier } from '../support/map-tier';

/** A slot over a map tier whose `get` rejects with whatever `next` holds. */
function slotFailingWith(clock = new ManualClock()) {
  const tier = new MapTier({ name: 'far' });
  const failures: unknown[] = [];
  let next: unknown;
  tier.get = () => Promise.reject(next);
  const slot = new TierSlot({
    tier: tier as Tier<unknown>,
    ttlCap: 0,
    mode: 'encoded',
    byCallerKey: false,
    perHost: false,
    circuitBreaker: { failures: 3, cooldownMs: 1000 },
    clock,
    report: (_tier, _op, _key, err) => failures.push(err),
    events: new CacheEvents(() => undefined),
  });
  slot.connected = true;
  const get = (error: unknown) => {
    next = error;
    return slot.call('get', 'k', () => tier.get('k'));
  };
  return { slot, failures, get, clock };
}

function timeout(): Error {
  return Object.assign(new Error('no answer within 100 ms'), { timedOut: true });
}

describe('What a tier error says of itself (TierFailure)', () => {
  it('failureOf reads the flags of any error object, and of nothing', () => {
    expect(failureOf(timeout())).toEqual({ timedOut: true, partial: false, tooLarge: false });
    expect(failureOf(new ValueTooLargeError('big', 10, 5))).toMatchObject({ tooLarge: true });
    expect(failureOf('a string')).toEqual({ timedOut: false, partial: false, tooLarge: false });
    expect(failureOf(null)).toEqual({ timedOut: false, partial: false, tooLarge: false });
    // Only `true` counts: a truthy string is not a flag.
    expect(failureOf({ timedOut: 'yes' }).timedOut).toBe(false);
  });

  it('a memcached error says timedOut for a timeout, and partial only when the tier sets it', () => {
    const t = new MemcachedError('slow', 'h:1', true, { kind: 'timeout' });
    const c = new MemcachedError('gone', 'h:1', true, { kind: 'connection' });
    expect([t.timedOut, c.timedOut, t.partial]).toEqual([true, false, false]);
    c.partial = true;
    expect(failureOf(c)).toEqual({ timedOut: false, partial: true, tooLarge: false });
  });

  it('the first timeout opens the circuit; other failures need `failures` in a row', async () => {
    const { slot, get, failures } = slotFailingWith();
    await get(new Error('refused'));
    await get(new Error('refused'));
    expect(slot.breaker.state).toBe('closed');
    expect(await get(timeout())).toBe(FAILED);
    expect(slot.breaker.state).toBe('open');
    expect(await get(new Error('never sent'))).toBe(FAILED);
    expect(slot.stats()).toMatchObject({ errors: 3, skipped: 1, circuitOpened: 1 });
    expect(failures).toHaveLength(3);
  });

  it('`circuitBreaker.timeouts` sets how many timeouts in a row open it', () => {
    const clock = new ManualClock();
    const breaker = new CircuitBreaker({ timeouts: 2, failures: 10 }, clock);
    breaker.failure(true);
    expect(breaker.state).toBe('closed');
    breaker.success(); // a success resets the count
    breaker.failure(true);
    expect(breaker.state).toBe('closed');
    breaker.failure(true);
    expect(breaker.state).toBe('open');
    expect(() => new CircuitBreaker({ timeouts: 0 }, clock)).toThrow(
      new InvalidOptionError('circuitBreaker.timeouts', '0 is not an integer >= 1'),
    );
  });

  it('a partial failure is counted and reported, but never opens the circuit', async () => {
    const { slot, get, failures } = slotFailingWith();
    for (let i = 0; i < 10; i++) {
      const err = new MemcachedError('one node hung', 'h:1', true, { kind: 'timeout' });
      err.partial = true;
      expect(await get(err)).toBe(FAILED);
    }
    expect(slot.breaker.state).toBe('closed');
    expect(slot.stats()).toMatchObject({ errors: 10, circuitOpened: 0 });
    expect(failures).toHaveLength(10);
  });

  it('a refused oversize value is a skip: no error, no report, circuit untouched', async () => {
    const { slot, get, failures } = slotFailingWith();
    for (let i = 0; i < 10; i++) {
      expect(await get(new ValueTooLargeError('20971520 bytes > 16 MiB', 20971520, 16777216))).toBe(
        FAILED,
      );
    }
    expect(slot.breaker.state).toBe('closed');
    expect(slot.stats()).toMatchObject({ errors: 0, skipped: 10, circuitOpened: 0 });
    expect(failures).toHaveLength(0);
  });
});

describe('Tier objects: the capabilities a store checks', () => {
  function tierWith(capabilities: Record<string, unknown>): Tier<Buffer> {
    const tier = new MapTier({ name: 'mine' });
    Object.defineProperty(tier, 'capabilities', {
      value: { ...tier.capabilities, ...capabilities },
    });
    return tier;
  }

  it.each([
    [
      { counters: true },
      'capabilities.counters',
      "must be 'atomic', 'additive' or false, got true",
    ],
    [
      { counters: 'exact' },
      'capabilities.counters',
      `must be 'atomic', 'additive' or false, got "exact"`,
    ],
    [
      { maxValueBytes: 0 },
      'capabilities.maxValueBytes',
      'must be a number of bytes >= 1 (or absent: no limit)',
    ],
    [
      { maxValueBytes: NaN },
      'capabilities.maxValueBytes',
      'must be a number of bytes >= 1 (or absent: no limit)',
    ],
  ])('%j is refused with its path', (caps, path, problem) => {
    expect(() => createTier(tierWith(caps), { path: 'tiers[1]' })).toThrow(
      new InvalidOptionError(`tiers[1].${path}`, problem),
    );
  });

  it('accepts both kinds of counters and a value limit', () => {
    for (const caps of [
      { counters: 'atomic' },
      { counters: 'additive', maxValueBytes: 1024 },
      { counters: false, maxValueBytes: Infinity },
    ]) {
      expect(() => createTier(tierWith(caps), { path: 'tiers[1]' })).not.toThrow();
    }
  });
});
