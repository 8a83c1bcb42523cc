import { InvalidOptionError } from '../../lib/errors';
import { MemcachedTier } from '../../lib/tiers/memcached/memcached.tier';
import { toMemcachedExpiry } from '../../lib/tiers/memcached/protocol';
import { HashRing, ketamaHash } from '../../lib/tiers/memcached/ring';
import { parseServers } from '../../lib/tiers/memcached/servers';

const THREE = ['10.0.0.1:11211', '10.0.0.2:11211', '10.0.0.3:11211'];
const KEYS = Array.from({ length: 10_000 }, (_, i) => `user:${i}:profile`);

function owners(ring: HashRing): string[] {
  return KEYS.map((k) => ring.serverFor(k));
}

function moved(a: string[], b: string[]): number {
  return a.filter((owner, i) => owner !== b[i]).length;
}

describe('HashRing (ketama)', () => {
  it('hashes like ketama: first four MD5 bytes, little-endian', () => {
    // md5("") = d41d8cd98f00b204e9800998ecf8427e
    expect(ketamaHash('')).toBe(0xd98c1dd4);
  });

  it('is deterministic and independent of the order servers are listed in', () => {
    const a = owners(new HashRing(THREE));
    expect(owners(new HashRing(THREE))).toEqual(a);
    expect(owners(new HashRing([...THREE].reverse()))).toEqual(a);
    expect(new Set(a)).toEqual(new Set(THREE));
  });

  it('spreads 10,000 keys roughly evenly over 3 servers', () => {
    const counts = new Map<string, number>();
    for (const owner of owners(new HashRing(THREE))) {
      counts.set(owner, (counts.get(owner) ?? 0) + 1);
    }
    for (const server of THREE) {
      const share = (counts.get(server) ?? 0) / KEYS.length;
      expect(share).toBeGreaterThan(0.2);
      expect(share).toBeLessThan(0.47);
    }
  });

  it('adding a 4th server moves 15-35% of keys, all of them to the new server', () => {
    const before = owners(new HashRing(THREE));
    const after = owners(new HashRing([...THREE, '10.0.0.4:11211']));
    const share = moved(before, after) / KEYS.length;
    expect(share).toBeGreaterThan(0.15);
    expect(share).toBeLessThan(0.35);
    after.forEach((owner, i) => {
      if (owner !== before[i]) expect(owner).toBe('10.0.0.4:11211');
    });
  });

  it('removing a server moves only the keys it owned', () => {
    const before = owners(new HashRing(THREE));
    const after = owners(new HashRing([THREE[0], THREE[2]]));
    let movedKeys = 0;
    before.forEach((owner, i) => {
      if (owner === THREE[1]) {
        expect(after[i]).not.toBe(THREE[1]);
        movedKeys++;
      } else {
        expect(after[i]).toBe(owner);
      }
    });
    expect(moved(before, after)).toBe(movedKeys);
    expect(movedKeys).toBeGreaterThan(0);
  });

  it('routes every key to the only server of a one-server ring', () => {
    const ring = new HashRing(['127.0.0.1:1']);
    expect(new Set(owners(ring))).toEqual(new Set(['127.0.0.1:1']));
  });
});

describe('toMemcachedExpiry', () => {
  const now = 1_700_000_000_000;
  const day = 24 * 3600 * 1000;

  it('keeps 0 as no expiry', () => {
    expect(toMemcachedExpiry(0, now)).toBe(0);
  });

  it('rounds up to whole seconds', () => {
    expect(toMemcachedExpiry(1, now)).toBe(1);
    expect(toMemcachedExpiry(999, now)).toBe(1);
    expect(toMemcachedExpiry(1000, now)).toBe(1);
    expect(toMemcachedExpiry(1500, now)).toBe(2);
  });

  it('keeps exactly 30 days relative and sends longer TTLs as absolute Unix seconds', () => {
    expect(toMemcachedExpiry(30 * day, now)).toBe(2_592_000);
    expect(toMemcachedExpiry(30 * day + 1, now)).toBe(Math.ceil((now + 30 * day + 1) / 1000));
    expect(toMemcachedExpiry(31 * day, now)).toBe(1_700_000_000 + 31 * 86_400);
  });

  it('rejects negative and non-finite TTLs', () => {
    expect(() => toMemcachedExpiry(-1, now)).toThrow(RangeError);
    expect(() => toMemcachedExpiry(Number.NaN, now)).toThrow(RangeError);
  });
});

describe('memcached server validation', () => {
  const make = (servers: unknown) =>
    new MemcachedTier({ type: 'memcached', servers: servers as string[] });

  it('accepts host:port and [ipv6]:port', () => {
    expect(parseServers(['localhost:11211', '[::1]:11212'])).toEqual([
      { host: 'localhost', port: 11211, address: 'localhost:11211' },
      { host: '::1', port: 11212, address: '[::1]:11212' },
    ]);
  });

  it.each([
    [[], /non-empty array/],
    [undefined, /^memcached\.servers: required \(a "host:port" list\), unless "discovery"/],
    [['localhost'], /memcached\.servers\[0\]: "localhost" has no port/],
    [['a:1', 'localhost:'], /memcached\.servers\[1\]: "localhost:" has no port/],
    [['a:0'], /servers\[0\]: "a:0" has an invalid port "0"/],
    [['a:65536'], /servers\[0\]: "a:65536" has an invalid port/],
    [['a:http'], /servers\[0\]: "a:http" has an invalid port/],
    [[':11211'], /servers\[0\]: ":11211" has no valid host/],
    [['a:1', 'a:1'], /servers\[1\]: "a:1" is listed twice/],
    [[42], /servers\[0\]: expected a "host:port" string/],
  ])('rejects %j with a TypeError naming the entry', (servers, message) => {
    expect(() => make(servers)).toThrow(TypeError);
    expect(() => make(servers)).toThrow(message);
  });

  it('names the entry under the path the tier was built at', () => {
    const build = () =>
      new MemcachedTier({ type: 'memcached', servers: ['localhost'] }, { path: 'tiers[1]' });
    expect(build).toThrow(InvalidOptionError);
    expect(build).toThrow(/^tiers\[1\]\.servers\[0\]: "localhost" has no port$/);
  });

  it('rejects invalid numeric options', () => {
    const base = { type: 'memcached' as const, servers: ['a:1'] };
    expect(() => new MemcachedTier({ ...base, timeout: 0 })).toThrow(TypeError);
    expect(() => new MemcachedTier({ ...base, retries: -1 })).toThrow(TypeError);
    expect(() => new MemcachedTier({ ...base, maxValueBytes: 1.5 })).toThrow(TypeError);
  });
});
