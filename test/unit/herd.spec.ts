import { Cached, Codec, KeyBuilder } from '../../lib';
import { shouldRefreshEarly } from '../../lib/herd/early-refresh';
import { HERD_DEFAULTS, resolveHerdOptions } from '../../lib/herd/herd.options';

describe('herd options', () => {
  it('applies call options over module defaults over the built-in ones', () => {
    expect(resolveHerdOptions(undefined)).toEqual(HERD_DEFAULTS);
    const module = resolveHerdOptions({ grace: 60_000, earlyRefresh: true });
    expect(module).toEqual({ ...HERD_DEFAULTS, grace: 60_000, beta: 1 });
    expect(resolveHerdOptions({ lockTimeout: 100, earlyRefresh: 2 }, module)).toEqual({
      ...HERD_DEFAULTS,
      grace: 60_000,
      beta: 2,
      lockTimeout: 100,
    });
    expect(resolveHerdOptions({ earlyRefresh: false }, module).beta).toBe(0);
  });

  it.each([
    [{ grace: -1 }, 'herd.grace: -1 is not a number of milliseconds >= 0'],
    [{ timeout: Infinity }, 'herd.timeout: Infinity is not a number'],
    [{ hardTimeout: '5' }, 'herd.hardTimeout: 5 is not a number'],
    [{ earlyRefresh: -1 }, 'herd.earlyRefresh: -1 is not true, false or a beta number >= 0'],
  ])('rejects %j naming the field', (options, message) => {
    expect(() => resolveHerdOptions(options as never)).toThrow(message);
  });

  it('@Cached() checks its herd options when applied', () => {
    expect(() => Cached({ lockTimeout: -5 })).toThrow('@Cached().lockTimeout: -5');
    expect(() => Cached({ grace: 1000, earlyRefresh: true })).not.toThrow();
  });
});

describe('XFetch early refresh', () => {
  const entry = { staleAt: 10_000, delta: 100 };

  it('recomputes when now - delta * beta * ln(random) reaches the expiry', () => {
    // -100 * ln(0.5) = 69.3: refresh from 69.3 ms before the expiry with random() = 0.5.
    expect(shouldRefreshEarly(entry, 10_000 - 70, 1, () => 0.5)).toBe(false);
    expect(shouldRefreshEarly(entry, 10_000 - 69, 1, () => 0.5)).toBe(true);
    // beta scales the lead.
    expect(shouldRefreshEarly(entry, 10_000 - 130, 2, () => 0.5)).toBe(true);
    // Far from expiry only a tiny random() triggers it.
    expect(shouldRefreshEarly(entry, 9000, 1, () => 0.5)).toBe(false);
    expect(shouldRefreshEarly(entry, 9000, 1, () => 1e-5)).toBe(true);
  });

  it('is rare far from the expiry and certain near it', () => {
    let r = 0;
    const uniform = () => ((r = (r * 9301 + 49297) % 233280) + 1) / 233281;
    const rate = (now: number) => {
      let n = 0;
      for (let i = 0; i < 10_000; i++) if (shouldRefreshEarly(entry, now, 1, uniform)) n++;
      return n / 10_000;
    };
    expect(rate(10_000 - 1000)).toBeLessThan(0.001); // e^-10
    expect(rate(10_000 - 100)).toBeCloseTo(Math.exp(-1), 1);
    expect(rate(10_000 - 1)).toBeGreaterThan(0.98);
  });

  it('never for entries without expiry or compute time, or with beta 0', () => {
    expect(shouldRefreshEarly({ staleAt: 0, delta: 100 }, 1, 1, () => 1e-9)).toBe(false);
    expect(shouldRefreshEarly({ staleAt: 10_000, delta: 0 }, 9999, 1, () => 1e-9)).toBe(false);
    expect(shouldRefreshEarly(entry, 9999, 0, () => 1e-9)).toBe(false);
  });
});

describe('entry metadata in the codec', () => {
  const codec = new Codec();

  it.each([
    ['JSON body', { a: [1, 'x'] }],
    ['V8 body', new Map([[1, new Date(3)]])],
    ['deflated body', 'x'.repeat(20_000)],
  ])('round-trips staleAt and delta with a %s', (_name, value) => {
    const bytes = codec.encode(value, 2_000, { staleAt: 1_000, delta: 12.5 });
    expect(codec.decode(bytes)).toEqual({ value, expiresAt: 2_000, staleAt: 1_000, delta: 12.5 });
  });

  it('plain entries carry none, and a truncated metadata header is refused', () => {
    expect(codec.decode(codec.encode('v', 0))).toEqual({ value: 'v', expiresAt: 0 });
    const bytes = codec.encode('v', 0, { staleAt: 1, delta: 1 });
    expect(() => codec.decode(bytes.subarray(0, 20))).toThrow('truncated header');
  });
});

describe('lease keys', () => {
  it('never equal a value key, plain or hashed, and keep its length', () => {
    const keys = new KeyBuilder({ namespace: 'app' });
    expect(keys.leaseKey('user:1')).toBe('app:1:0!user:1');
    const long = 'x'.repeat(300);
    expect(keys.build(long)).toMatch(/^app:1:0#/);
    expect(keys.leaseKey(long)).toBe(keys.build(long).replace('#', '~'));
    // A caller key that looks like a lease key still builds to a value key.
    expect(keys.build('!user:1')).toBe('app:1:0:!user:1');
    const max = 'y'.repeat(250 - 'app:1:0:'.length);
    expect(Buffer.byteLength(keys.leaseKey(max))).toBe(250);
  });
});
