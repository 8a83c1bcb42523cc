import { InvalidOptionError } from '../../lib/errors';
import type { CassandraTierOptions } from '../../lib/tiers/cassandra/cassandra.options';
import { CassandraTier } from '../../lib/tiers/cassandra/cassandra.tier';
import { renderReplication } from '../../lib/tiers/cassandra/statements';
import {
  CASSANDRA_MAX_EXPIRATION_EPOCH_SECONDS,
  CASSANDRA_MAX_TTL_SECONDS,
  toCassandraTtl,
} from '../../lib/tiers/cassandra/ttl';

const valid: CassandraTierOptions = {
  type: 'cassandra',
  contactPoints: ['127.0.0.1:9142'],
  localDataCenter: 'datacenter1',
};

function make(overrides: Record<string, unknown>): CassandraTier {
  return new CassandraTier({ ...valid, ...overrides } as CassandraTierOptions);
}

describe('CassandraTier options', () => {
  it('accepts valid options, applies defaults and lowercases identifiers', () => {
    const tier = make({ keyspace: 'My_Ks', contactPoints: ['a.example', 'b.example'] });
    expect(tier.kind).toBe('cassandra');
    expect(tier.capabilities).toEqual({
      local: false,
      leases: 'consensus',
      counters: 'additive',
      enumerate: true,
      ttlResolutionMs: 1000,
      maxKeyBytes: 65535,
      maxValueBytes: 16 * 1024 * 1024 - 128 * 1024,
    });
    expect(tier.name).toBe('cassandra');
    expect(tier.keyspace).toBe('my_ks');
    expect(tier.table).toBe('cache');
    expect(tier.contactPoints).toEqual(['a.example:9042', 'b.example:9042']);
    expect(make({ keyspace: undefined }).keyspace).toBe('tiered_cache');
    expect(new CassandraTier(valid, { name: 'cassandra[1]' }).name).toBe('cassandra[1]');
    expect(new CassandraTier({ ...valid, name: 'sessions' }).name).toBe('sessions');
    expect(new CassandraTier({ ...valid, name: 'sessions' }, { name: 'ctx' }).name).toBe('ctx');
  });

  it.each(
    (
      [
        [{ contactPoints: [] }, 'cassandra.contactPoints: expected a non-empty array'],
        [{ contactPoints: undefined }, 'cassandra.contactPoints: expected a non-empty array'],
        [
          { contactPoints: [''] },
          'cassandra.contactPoints[0]: "" is invalid: expected "host" or "host:port" (IPv6 as "[addr]:port"), port 1-65535',
        ],
        [
          { contactPoints: ['a', 42] },
          'cassandra.contactPoints[1]: 42 is invalid: expected "host" or "host:port"',
        ],
        [
          { contactPoints: ['h:abc'] },
          'cassandra.contactPoints[0]: "h:abc" has an invalid port "abc" (expected 1-65535)',
        ],
        [{ contactPoints: ['h:0'] }, 'cassandra.contactPoints[0]: "h:0" has an invalid port "0"'],
        [{ contactPoints: ['h:65536'] }, 'has an invalid port "65536"'],
        [
          { contactPoints: ['h:1:2'] },
          'cassandra.contactPoints[0]: "h:1:2" is ambiguous: write an IPv6 address as "[addr]:port"',
        ],
        [{ contactPoints: [':9042'] }, 'cassandra.contactPoints[0]: ":9042" has no valid host'],
        [
          { contactPoints: ['[nothost]:9042'] },
          'cassandra.contactPoints[0]: "[nothost]:9042" has no valid IPv6 address between the brackets',
        ],
        [
          { contactPoints: ['a:9042', 'b:9043'] },
          'cassandra.contactPoints: all contact points must use the same port (cassandra-driver reaches discovered nodes at one port), got 9042, 9043',
        ],
        [{ localDataCenter: '' }, 'cassandra.localDataCenter: expected a non-empty string'],
        [{ localDataCenter: undefined }, 'cassandra.localDataCenter: expected a non-empty string'],
        [
          { keyspace: 'my-ks' },
          'cassandra.keyspace: "my-ks" is not a valid CQL identifier (letters, digits and _, starting with a letter, at most 48)',
        ],
        [{ keyspace: '1ks' }, 'cassandra.keyspace: "1ks" is not a valid CQL identifier'],
        [{ keyspace: 'k'.repeat(49) }, 'is not a valid CQL identifier'],
        [{ keyspace: '' }, 'cassandra.keyspace: "" is not a valid CQL identifier'],
        [{ table: 'a b' }, 'cassandra.table: "a b" is not a valid CQL identifier'],
        [
          { table: 't'.repeat(40) },
          'cassandra.table: "' + 't'.repeat(40) + '" is too long: at most 39',
        ],
        [
          { consistency: 'serial' },
          'cassandra.consistency: "serial" is not one of one, localOne, quorum, localQuorum, all, eachQuorum, two, three',
        ],
        [
          { replication: { replication_factor: 1 } },
          'cassandra.replication: expected a map with a "class"',
        ],
        [
          { replication: { class: 'SimpleStrategy', rf: {} } },
          'cassandra.replication: expected a map',
        ],
        [{ createSchema: 'yes' }, 'cassandra.createSchema: yes is not true or false'],
        [{ timeout: 0 }, 'cassandra.timeout: 0 is not a number of milliseconds > 0'],
        [{ timeout: Number.NaN }, 'cassandra.timeout: NaN is not a number of milliseconds > 0'],
        [{ maxValueBytes: 0 }, 'cassandra.maxValueBytes: 0 is not an integer >= 1'],
        [{ maxValueBytes: 1.5 }, 'cassandra.maxValueBytes: 1.5 is not an integer >= 1'],
        [{ credentials: { username: 'u' } }, 'cassandra.credentials: expected { username: string'],
      ] as const
    ).map(([overrides, message]) => [Object.keys(overrides)[0], message, overrides] as const),
  )('rejects a bad %s: %s', (_field, message, overrides) => {
    const attempt = () => make(overrides);
    expect(attempt).toThrow(TypeError);
    expect(attempt).toThrow(InvalidOptionError);
    expect(attempt).toThrow(message);
  });

  it('names the option by the path it was given, e.g. where the store found it', () => {
    const attempt = () =>
      new CassandraTier({ ...valid, keyspace: 'my-ks' }, { path: 'tiers[2]', name: 'cassandra' });
    expect(attempt).toThrow(
      'tiers[2].keyspace: "my-ks" is not a valid CQL identifier (letters, digits and _, starting with a letter, at most 48)',
    );
    let error: unknown;
    try {
      attempt();
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ code: 'E_INVALID_OPTION', path: 'tiers[2].keyspace' });
    expect(
      () => new CassandraTier({ ...valid, contactPoints: ['a', 'b:x'] }, { path: 'tiers[2]' }),
    ).toThrow('tiers[2].contactPoints[1]: "b:x" has an invalid port "x" (expected 1-65535)');
    expect(() => new CassandraTier(null as never)).toThrow(
      'cassandra: must be an object, got null',
    );
  });

  it('accepts the longest identifiers', () => {
    expect(make({ keyspace: 'k'.repeat(48), table: 't'.repeat(39) }).table).toBe('t'.repeat(39));
  });

  it('accepts every listed consistency', () => {
    for (const consistency of [
      'one',
      'localOne',
      'quorum',
      'localQuorum',
      'all',
      'eachQuorum',
      'two',
      'three',
    ]) {
      expect(() => make({ consistency })).not.toThrow();
    }
  });
});

describe('contact points', () => {
  it('parses host, host:port and bracketed IPv6, with 9042 as the default port', () => {
    const points = (...contactPoints: string[]) => make({ contactPoints }).contactPoints;
    expect(points('db1')).toEqual(['db1:9042']);
    expect(points(' 10.0.0.1:19042 ')).toEqual(['10.0.0.1:19042']);
    expect(points('[::1]:9043')).toEqual(['[::1]:9043']);
    expect(points('[::1]')).toEqual(['[::1]:9042']);
    expect(points('db1:09042', 'db2')).toEqual(['db1:9042', 'db2:9042']);
  });

  it('formats IPv6 contact points with brackets for the driver', () => {
    expect(make({ contactPoints: ['[::1]:9043'] }).contactPoints).toEqual(['[::1]:9043']);
  });
});

describe('renderReplication', () => {
  it('renders every key and value as a quoted CQL string, escaping quotes', () => {
    expect(renderReplication({ class: 'SimpleStrategy', replication_factor: 1 })).toBe(
      "{'class': 'SimpleStrategy', 'replication_factor': '1'}",
    );
    expect(renderReplication({ class: "x'; DROP KEYSPACE y; --" })).toBe(
      "{'class': 'x''; DROP KEYSPACE y; --'}",
    );
  });
});

describe('toCassandraTtl', () => {
  const epoch = 0; // 1970: the 2038 limit is far away, so the 20-year cap applies.

  it('gives no TTL for 0', () => {
    expect(toCassandraTtl(0)).toBeUndefined();
  });

  it('rounds up to whole seconds', () => {
    expect(toCassandraTtl(1, epoch)).toBe(1);
    expect(toCassandraTtl(999, epoch)).toBe(1);
    expect(toCassandraTtl(1000, epoch)).toBe(1);
    expect(toCassandraTtl(1001, epoch)).toBe(2);
    expect(toCassandraTtl(1500, epoch)).toBe(2);
    expect(toCassandraTtl(60_000, epoch)).toBe(60);
  });

  it('caps at 20 years', () => {
    const twentyYearsMs = CASSANDRA_MAX_TTL_SECONDS * 1000;
    expect(CASSANDRA_MAX_TTL_SECONDS).toBe(630_720_000);
    expect(toCassandraTtl(twentyYearsMs, epoch)).toBe(CASSANDRA_MAX_TTL_SECONDS);
    expect(toCassandraTtl(twentyYearsMs - 1000, epoch)).toBe(CASSANDRA_MAX_TTL_SECONDS - 1);
    expect(toCassandraTtl(twentyYearsMs + 1, epoch)).toBe(CASSANDRA_MAX_TTL_SECONDS);
    expect(toCassandraTtl(100 * twentyYearsMs, epoch)).toBe(CASSANDRA_MAX_TTL_SECONDS);
    expect(toCassandraTtl(Number.POSITIVE_INFINITY, epoch)).toBe(CASSANDRA_MAX_TTL_SECONDS);
  });

  it('keeps the expiration a day before 2038-01-19, which older servers cannot store', () => {
    const now = Date.UTC(2026, 10, 21);
    const limit = CASSANDRA_MAX_EXPIRATION_EPOCH_SECONDS - now / 1000 - 86_400;
    expect(limit).toBeLessThan(CASSANDRA_MAX_TTL_SECONDS);
    expect(toCassandraTtl(CASSANDRA_MAX_TTL_SECONDS * 1000, now)).toBe(limit);
    expect(toCassandraTtl(3_600_000, now)).toBe(3600);
    // Past the limit, still a valid (short) TTL rather than a negative one.
    expect(toCassandraTtl(3_600_000, Date.UTC(2040, 0, 1))).toBe(1);
  });

  it.each([-1, Number.NaN])('rejects %p with a RangeError', (ttl) => {
    expect(() => toCassandraTtl(ttl)).toThrow(RangeError);
    expect(() => toCassandraTtl(ttl)).toThrow('cassandra ttl');
  });
});
