import {
  CASSANDRA_MAX_EXPIRATION_EPOCH_SECONDS,
  CASSANDRA_MAX_TTL_SECONDS,
  CassandraTier,
  parseContactPoint,
  renderReplication,
  toCassandraTtl,
} from '../../lib/tiers/cassandra.tier';
import type { CassandraTierOptions } from '../../lib/tiers/tier-options';

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
    expect(tier.name).toBe('cassandra');
    expect(tier.keyspace).toBe('my_ks');
    expect(tier.table).toBe('cache');
    expect(tier.contactPoints).toEqual(['a.example:9042', 'b.example:9042']);
    expect(make({ keyspace: undefined }).keyspace).toBe('tiered_cache');
    expect(new CassandraTier(valid, 'cassandra[1]').name).toBe('cassandra[1]');
  });

  it.each(
    (
      [
        [{ contactPoints: [] }, 'cassandra contactPoints: expected a non-empty array'],
        [{ contactPoints: undefined }, 'cassandra contactPoints: expected a non-empty array'],
        [
          { contactPoints: [''] },
          'cassandra contactPoints: "" is invalid: expected "host" or "host:port"',
        ],
        [
          { contactPoints: ['h:abc'] },
          'cassandra contactPoints: "h:abc" has an invalid port "abc"',
        ],
        [{ contactPoints: ['h:0'] }, 'has an invalid port "0"'],
        [{ contactPoints: ['h:65536'] }, 'has an invalid port "65536"'],
        [{ contactPoints: ['h:1:2'] }, 'cassandra contactPoints: "h:1:2" is invalid'],
        [{ contactPoints: [':9042'] }, 'cassandra contactPoints: ":9042" is invalid'],
        [
          { contactPoints: ['[nothost]:9042'] },
          'cassandra contactPoints: "[nothost]:9042" is invalid',
        ],
        [
          { contactPoints: ['a:9042', 'b:9043'] },
          'cassandra contactPoints: all contact points must use the same port (cassandra-driver reaches discovered nodes at one port), got 9042, 9043',
        ],
        [{ localDataCenter: '' }, 'cassandra localDataCenter: expected a non-empty string'],
        [{ localDataCenter: undefined }, 'cassandra localDataCenter: expected a non-empty string'],
        [
          { keyspace: 'my-ks' },
          'cassandra keyspace: "my-ks" is not a valid CQL identifier (letters, digits and _, starting with a letter, at most 48)',
        ],
        [{ keyspace: '1ks' }, 'cassandra keyspace: "1ks" is not a valid CQL identifier'],
        [{ keyspace: 'k'.repeat(49) }, 'is not a valid CQL identifier'],
        [{ keyspace: '' }, 'cassandra keyspace: "" is not a valid CQL identifier'],
        [{ table: 'a b' }, 'cassandra table: "a b" is not a valid CQL identifier'],
        [
          { table: 't'.repeat(40) },
          'cassandra table: "' + 't'.repeat(40) + '" is too long: at most 39',
        ],
        [
          { consistency: 'serial' },
          'cassandra consistency: "serial" is not one of one, localOne, quorum, localQuorum, all, eachQuorum, two, three',
        ],
        [
          { replication: { replication_factor: 1 } },
          'cassandra replication: expected a map with a "class"',
        ],
        [
          { replication: { class: 'SimpleStrategy', rf: {} } },
          'cassandra replication: expected a map',
        ],
        [{ createSchema: 'yes' }, 'cassandra createSchema: expected true or false'],
        [{ timeout: 0 }, 'cassandra timeout: 0 is not a number of ms > 0'],
        [{ timeout: Number.NaN }, 'cassandra timeout: NaN is not a number of ms > 0'],
        [{ credentials: { username: 'u' } }, 'cassandra credentials: expected { username: string'],
      ] as const
    ).map(([overrides, message]) => [Object.keys(overrides)[0], message, overrides] as const),
  )('rejects a bad %s: %s', (_field, message, overrides) => {
    const attempt = () => make(overrides);
    expect(attempt).toThrow(TypeError);
    expect(attempt).toThrow(message);
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

describe('parseContactPoint', () => {
  it('parses host, host:port and bracketed IPv6', () => {
    expect(parseContactPoint('db1')).toEqual({ host: 'db1', port: 9042 });
    expect(parseContactPoint(' 10.0.0.1:19042 ')).toEqual({ host: '10.0.0.1', port: 19042 });
    expect(parseContactPoint('[::1]:9043')).toEqual({ host: '::1', port: 9043 });
    expect(parseContactPoint('[::1]')).toEqual({ host: '::1', port: 9042 });
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
