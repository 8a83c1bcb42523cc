import { InvalidOptionError } from '../../lib/errors';
import { HERD_OPTIONS, resolveHerdOptions } from '../../lib/herd/herd.options';
import { KeyBuilder } from '../../lib/keys/key-builder';
import { nearestName, onlyKnownKeys } from '../../lib/options';
import { Codec } from '../../lib/serialization/codec';
import { CircuitBreaker } from '../../lib/store/circuit-breaker';
import { TieredStore, createTieredStore } from '../../lib/store/tiered-store';
import { TIERED_STORE_OPTIONS } from '../../lib/store/tiered-store.options';
import { resolveCassandraOptions } from '../../lib/tiers/cassandra/cassandra.options';
import { ElastiCacheDiscovery } from '../../lib/tiers/memcached/discovery/elasticache-discovery';
import {
  resolveDiscoveryOptions,
  resolveMemcachedOptions,
} from '../../lib/tiers/memcached/memcached.options';
import { MemcachedTier } from '../../lib/tiers/memcached/memcached.tier';
import { MemoryTier } from '../../lib/tiers/memory/memory.tier';
import type { TieredStoreOptions } from '../../lib/store/tiered-store.options';
import { systemClock } from '../../lib/clock';
import { MapTier } from '../support/map-tier';

/** The error `fn` throws, checked to be an {@link InvalidOptionError} (fails when it does not throw). */
function optionError(fn: () => unknown): InvalidOptionError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err).toBeInstanceOf(TypeError);
    expect((err as InvalidOptionError).code).toBe('E_INVALID_OPTION');
    return err as InvalidOptionError;
  }
  throw new Error('expected an InvalidOptionError');
}

const MEMCACHED = { type: 'memcached' as const, servers: ['127.0.0.1:1'] };
const CASSANDRA = {
  type: 'cassandra' as const,
  contactPoints: ['127.0.0.1'],
  localDataCenter: 'dc1',
};

/** Options given as plain objects, as a config file would: a typo is not a type error there. */
function store(options: Record<string, unknown>): TieredStore {
  return createTieredStore(options as TieredStoreOptions);
}

describe('unknown options', () => {
  describe('onlyKnownKeys', () => {
    const known = ['type', 'ttl', 'name', 'maxBytes', 'maxEntries', 'serialize'];

    it('accepts known keys', () => {
      expect(() => onlyKnownKeys('tiers[0]', { type: 'memory', ttl: 1 }, known)).not.toThrow();
    });

    it('names the path and a close valid name', () => {
      const err = optionError(() => onlyKnownKeys('tiers[0]', { type: 'memory', ttL: 1 }, known));
      expect(err.path).toBe('tiers[0].ttL');
      expect(err.message).toBe('tiers[0].ttL: unknown option (did you mean "ttl"?)');
    });

    it('lists the valid names when none is close', () => {
      const err = optionError(() => onlyKnownKeys('', { bogus: 1 }, known));
      expect(err.message).toBe(
        'bogus: unknown option (valid here: type, ttl, name, maxBytes, maxEntries, serialize)',
      );
    });

    it('refuses an unknown key even when its value is undefined', () => {
      expect(optionError(() => onlyKnownKeys('x', { ttll: undefined }, known)).path).toBe('x.ttll');
    });

    it.each([
      ['ttL', 'ttl'],
      ['tll', 'ttl'],
      ['server', 'servers'],
      ['Servers', 'servers'],
      ['timout', 'timeout'],
      ['maxbytes', 'maxBytes'],
      ['maxByte', 'maxBytes'],
      ['interval', 'intervalMs'],
      ['contactPoint', 'contactPoints'],
      ['keySpace', 'keyspace'],
      ['localDatacenter', 'localDataCenter'],
    ])('for %j suggests %j', (typo, name) => {
      const names = [
        'ttl',
        'servers',
        'timeout',
        'maxBytes',
        'maxEntries',
        'intervalMs',
        'contactPoints',
        'keyspace',
        'localDataCenter',
      ];
      expect(nearestName(typo, names)).toBe(name);
    });

    it.each(['bogus', 'x', 'compression', 'ttlSeconds'])('suggests nothing for %j', (typo) => {
      expect(nearestName(typo, ['ttl', 'servers', 'timeout', 'maxBytes', 'type'])).toBe(undefined);
    });
  });

  describe('at the store', () => {
    it("rejects the issue's example, naming the first unknown key", () => {
      expect(
        optionError(() => store({ bogus: 1, tiers: [{ type: 'memory', bogus: 2 }] })).path,
      ).toBe('bogus');
      expect(optionError(() => store({ tiers: [{ type: 'memory', bogus: 2 }] })).path).toBe(
        'tiers[0].bogus',
      );
    });

    it.each([
      [{ ttL: 1000 }, 'ttL', 'ttl'],
      [{ namespce: 'a' }, 'namespce', 'namespace'],
      [{ tier: [] }, 'tier', 'tiers'],
      [{ generationRefresh: 1 }, 'generationRefresh', 'generationRefreshMs'],
      [{ serializer: { compresThreshold: 1 } }, 'serializer.compresThreshold', 'compressThreshold'],
      [{ serializer: { compressLvl: 1 } }, 'serializer.compressLvl', 'compressLevel'],
      [{ circuitBreaker: { failure: 1 } }, 'circuitBreaker.failure', 'failures'],
      [{ circuitBreaker: { cooldown: 1 } }, 'circuitBreaker.cooldown', 'cooldownMs'],
      [{ tiers: [{ type: 'memory', maxByte: 1 }] }, 'tiers[0].maxByte', 'maxBytes'],
      [{ tiers: [{ type: 'memory', serialise: false }] }, 'tiers[0].serialise', 'serialize'],
      [{ tiers: [{ type: 'memory' }, { ...MEMCACHED, timout: 1 }] }, 'tiers[1].timout', 'timeout'],
      [{ tiers: [{ type: 'memcached', server: ['127.0.0.1:1'] }] }, 'tiers[0].server', 'servers'],
      [
        { tiers: [{ type: 'memcached', discovery: { endpoint: 'h:1', interval: 5 } }] },
        'tiers[0].discovery.interval',
        'intervalMs',
      ],
      [{ tiers: [{ ...CASSANDRA, keySpace: 'k' }] }, 'tiers[0].keySpace', 'keyspace'],
      [
        { bus: { type: 'redis', url: 'redis://127.0.0.1:1', degradedTTL: 5 } },
        'bus.degradedTTL',
        'degradedTtl',
      ],
      [
        { tiers: [{ ...CASSANDRA, credentials: { username: 'u', password: 'p', passwrd: 'p' } }] },
        'tiers[0].credentials.passwrd',
        'password',
      ],
    ])('%j fails at %s (did you mean %j?)', (options, path, name) => {
      const err = optionError(() => store(options));
      expect(err.path).toBe(path);
      expect(err.message).toBe(`${path}: unknown option (did you mean "${name}"?)`);
    });

    it('accepts every documented option', () => {
      const all: Required<TieredStoreOptions> = {
        tiers: [
          { type: 'memory', ttl: 1, name: 'm', maxBytes: 1000, maxEntries: 10, serialize: true },
        ],
        ttl: 1,
        serializer: { compressThreshold: 1, compressLevel: 1 },
        circuitBreaker: { failures: 1, cooldownMs: 1, timeouts: 1 },
        counters: 'farthest',
        generationRefreshMs: 1,
        tagRefreshMs: 1,
        clock: systemClock,
        namespace: 'a',
        version: 1,
        keyFn: (k) => k,
        bus: {
          transport: {
            publish: () => Promise.resolve(),
            subscribe: () => Promise.resolve(),
            close: () => Promise.resolve(),
          },
          degradedTtl: 1,
          maxQueue: 1,
          timeout: 1,
        },
      };
      expect(() => createTieredStore(all)).not.toThrow();
      expect([...TIERED_STORE_OPTIONS].sort()).toEqual(Object.keys(all).sort());
    });

    it('does not look into tier objects', () => {
      const tier = Object.assign(new MapTier(), { somethingOfItsOwn: 1 });
      expect(() => createTieredStore({ tiers: [tier] })).not.toThrow();
    });

    it('accepts the extra keys its caller names (the Nest module passes its own)', () => {
      const options = { ttl: 1, failFast: true, isGlobal: true } as TieredStoreOptions;
      expect(
        () => new TieredStore(options, ['failFast', 'logErrors', 'herd', 'isGlobal']),
      ).not.toThrow();
      expect(optionError(() => new TieredStore(options)).path).toBe('failFast');
      const typo = { failfast: true } as TieredStoreOptions;
      expect(optionError(() => new TieredStore(typo, ['failFast'])).message).toBe(
        'failfast: unknown option (did you mean "failFast"?)',
      );
    });
  });

  describe('building a part directly', () => {
    it('a memory tier', () => {
      const err = optionError(() => new MemoryTier({ type: 'memory', maxEntrys: 1 } as never));
      expect(err.message).toBe('memory.maxEntrys: unknown option (did you mean "maxEntries"?)');
    });

    it('a memcached tier and its options', () => {
      expect(optionError(() => new MemcachedTier({ ...MEMCACHED, retry: 1 } as never)).path).toBe(
        'memcached.retry',
      );
      expect(
        optionError(() => resolveMemcachedOptions({ ...MEMCACHED, failover: 1 } as never, 't'))
          .message,
      ).toBe('t.failover: unknown option (did you mean "failoverTime"?)');
      expect(
        optionError(() => resolveDiscoveryOptions({ endpoint: 'h:1', timeout: 1 } as never, 'd'))
          .message,
      ).toBe('d.timeout: unknown option (did you mean "timeoutMs"?)');
      expect(
        optionError(
          () => new ElastiCacheDiscovery({ endpoint: 'h:1', ignoreError: true } as never, () => {}),
        ).path,
      ).toBe('discovery.ignoreError');
    });

    it('cassandra options', () => {
      expect(
        optionError(() =>
          resolveCassandraOptions({ ...CASSANDRA, consistancy: 'one' } as never, 'c'),
        ).message,
      ).toBe('c.consistancy: unknown option (did you mean "consistency"?)');
    });

    it('a codec and a circuit breaker', () => {
      expect(optionError(() => new Codec({ level: 1 } as never)).path).toBe('level');
      expect(optionError(() => new Codec({ level: 1 } as never, 'serializer')).path).toBe(
        'serializer.level',
      );
      expect(
        optionError(() => new CircuitBreaker({ cooldownMS: 1 } as never, systemClock)).message,
      ).toBe('circuitBreaker.cooldownMS: unknown option (did you mean "cooldownMs"?)');
    });

    it('a key builder still takes the whole store options (the store checks them)', () => {
      expect(() => new KeyBuilder({ namespace: 'a', tiers: [] } as never)).not.toThrow();
    });

    it('herd options, with the keys that may sit beside them', () => {
      expect(
        optionError(() => resolveHerdOptions({ gracee: 1 } as never, undefined, 'herd', []))
          .message,
      ).toBe('herd.gracee: unknown option (did you mean "grace"?)');
      expect(() =>
        resolveHerdOptions({ grace: 1, ttl: 1 } as never, undefined, '@Cached()', ['ttl']),
      ).not.toThrow();
      expect(
        optionError(() =>
          resolveHerdOptions({ lockTimout: 1 } as never, undefined, '@Cached()', ['ttl']),
        ).path,
      ).toBe('@Cached().lockTimout');
      // Without the list (callers that pass options holding other settings), no key check.
      expect(() => resolveHerdOptions({ grace: 1, key: 'k' } as never)).not.toThrow();
      expect([...HERD_OPTIONS].sort()).toEqual(
        ['earlyRefresh', 'grace', 'hardTimeout', 'lockTimeout', 'timeout'].sort(),
      );
    });
  });
});
