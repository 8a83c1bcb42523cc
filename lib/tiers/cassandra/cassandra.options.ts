import {
  at,
  boolean,
  describeValue,
  integer,
  invalid,
  onlyKnownKeys,
  optionNames,
  positiveMilliseconds,
} from '../../options';
import { HOST_PORT_FORMS, formatHostPort, parseHostPort } from '../host-port';
import type { BaseTierOptions } from '../tier-options';
import { COUNTER_SUFFIX } from './statements';

/** The consistency levels a tier may read and write at (`types.consistencies` names). */
export type CassandraConsistency =
  'one' | 'localOne' | 'quorum' | 'localQuorum' | 'all' | 'eachQuorum' | 'two' | 'three';

/** A Cassandra (or ScyllaDB) cluster, spoken to with cassandra-driver. */
export interface CassandraTierOptions extends BaseTierOptions {
  type: 'cassandra';
  /**
   * `host` or `host:port` of contact points (IPv6 as `[addr]` or `[addr]:port`). All must use
   * the same port: the driver reaches the nodes it discovers at one cluster-wide port.
   * Required, non-empty.
   * @default port 9042
   */
  contactPoints: string[];
  /** The driver's local data center, e.g. `datacenter1`. Required. */
  localDataCenter: string;
  /**
   * Keyspace name: a CQL identifier (letters, digits and `_`, starting with a letter, at most
   * 48), lowercased as Cassandra stores it.
   * @default 'tiered_cache'
   */
  keyspace?: string;
  /**
   * Table name: a CQL identifier of at most 39 characters, lowercased; the counter table is
   * `<table>_counters`.
   * @default 'cache'
   */
  table?: string;
  /**
   * Replication map used when the keyspace is created: a cache, not a system of record.
   * @default { class: 'SimpleStrategy', replication_factor: 1 }
   */
  replication?: Record<string, string | number>;
  /**
   * Create the keyspace and tables when missing at `connect()`; `false` only checks that they
   * exist.
   * @default true
   */
  createSchema?: boolean;
  /**
   * Consistency of reads and writes. Lightweight transactions (leases) run at local serial
   * consistency for the `local…` levels, serial otherwise.
   * @default 'localOne'
   */
  consistency?: CassandraConsistency;
  /**
   * Plain-text credentials (`PlainTextAuthProvider`).
   * @default undefined: no authentication
   */
  credentials?: { username: string; password: string };
  /**
   * Per-request timeout in ms (the driver's `readTimeout`); the connect timeout per contact
   * point is this, bounded to 1 to 5 s.
   * @default 2000
   */
  timeout?: number;
  /**
   * The largest encoded entry this tier stores, bytes (an integer >= 1). A larger one is refused
   * before it is sent (`ValueTooLargeError`, a skip for the store, which deletes the key here
   * instead). The default fits Cassandra's default largest mutation
   * (`max_mutation_size_in_kb`, half of `commitlog_segment_size_in_mb`: 16 MiB) with room for
   * the key and the row's overhead; a larger value would be refused by the server only after
   * its write timeout. Raise it only with the server's limit.
   * @default 16 MiB - 128 KiB (16646144)
   */
  maxValueBytes?: number;
}

/** Default {@link CassandraTierOptions.maxValueBytes}: Cassandra's 16 MiB mutation limit, less 128 KiB. */
export const CASSANDRA_MAX_VALUE_BYTES = 16 * 1024 * 1024 - 128 * 1024;

/** {@link CassandraTierOptions} after validation and defaults. */
export interface ResolvedCassandraOptions {
  /** `host:port` of every contact point (IPv6 as `[addr]:port`). */
  contactPoints: readonly string[];
  /** The one port of every contact point. */
  port: number;
  localDataCenter: string;
  /** Lowercased. */
  keyspace: string;
  /** Lowercased. */
  table: string;
  replication: Record<string, string | number>;
  createSchema: boolean;
  consistency: CassandraConsistency;
  credentials: { username: string; password: string } | undefined;
  timeout: number;
  maxValueBytes: number;
}

const CASSANDRA_OPTIONS = optionNames<CassandraTierOptions>({
  type: true,
  ttl: true,
  name: true,
  contactPoints: true,
  localDataCenter: true,
  keyspace: true,
  table: true,
  replication: true,
  createSchema: true,
  consistency: true,
  credentials: true,
  timeout: true,
  maxValueBytes: true,
});

const CREDENTIALS = optionNames<NonNullable<CassandraTierOptions['credentials']>>({
  username: true,
  password: true,
});

/** Default port of the CQL native protocol. */
const CASSANDRA_DEFAULT_PORT = 9042;

const CONSISTENCIES: readonly CassandraConsistency[] = [
  'one',
  'localOne',
  'quorum',
  'localQuorum',
  'all',
  'eachQuorum',
  'two',
  'three',
];

/** CQL identifier accepted for `keyspace` and `table` (unquoted: case-insensitive). */
const CQL_IDENTIFIER = /^[A-Za-z][A-Za-z0-9_]{0,47}$/;
const IDENTIFIER_RULE = 'letters, digits and _, starting with a letter, at most 48';
/** Cassandra limits table names to 48 characters and the counter table adds `_counters`. */
const MAX_TABLE_LENGTH = 48 - COUNTER_SUFFIX.length;

/**
 * Validates {@link CassandraTierOptions} and applies defaults.
 * @param path where the options sit, for messages: `cassandra` for a tier built directly,
 *   `tiers[2]` for one built by the store.
 * @throws InvalidOptionError naming the option by its full path, e.g. `tiers[2].keyspace`.
 */
export function resolveCassandraOptions(
  options: CassandraTierOptions,
  path: string,
): ResolvedCassandraOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalid(path, `must be an object, got ${describeValue(options)}`);
  }
  onlyKnownKeys(path, options, CASSANDRA_OPTIONS);
  const { contactPoints, port } = resolveContactPoints(at(path, 'contactPoints'), options);
  const { localDataCenter } = options;
  if (typeof localDataCenter !== 'string' || localDataCenter.trim() === '') {
    throw invalid(
      at(path, 'localDataCenter'),
      'expected a non-empty string, the data center of the nearest nodes (e.g. "datacenter1")',
    );
  }
  const keyspace = identifier(at(path, 'keyspace'), options.keyspace, 'tiered_cache');
  const table = identifier(at(path, 'table'), options.table, 'cache');
  if (table.length > MAX_TABLE_LENGTH) {
    throw invalid(
      at(path, 'table'),
      `"${options.table}" is too long: at most ${MAX_TABLE_LENGTH} characters, ` +
        `as the counter table "<table>${COUNTER_SUFFIX}" must fit Cassandra's 48`,
    );
  }
  const consistency = options.consistency ?? 'localOne';
  if (!CONSISTENCIES.includes(consistency)) {
    throw invalid(
      at(path, 'consistency'),
      `${JSON.stringify(consistency)} is not one of ${CONSISTENCIES.join(', ')}`,
    );
  }
  return {
    contactPoints,
    port,
    localDataCenter,
    keyspace,
    table,
    replication: replicationMap(at(path, 'replication'), options.replication),
    createSchema: boolean(at(path, 'createSchema'), options.createSchema, true),
    consistency,
    credentials: credentials(at(path, 'credentials'), options.credentials),
    timeout: positiveMilliseconds(at(path, 'timeout'), options.timeout, 2000),
    maxValueBytes: integer(
      at(path, 'maxValueBytes'),
      options.maxValueBytes,
      CASSANDRA_MAX_VALUE_BYTES,
      1,
    ),
  };
}

/** The contact points as `host:port`, and their one port. */
function resolveContactPoints(
  path: string,
  options: CassandraTierOptions,
): { contactPoints: string[]; port: number } {
  const { contactPoints } = options;
  if (!Array.isArray(contactPoints) || contactPoints.length === 0) {
    throw invalid(path, 'expected a non-empty array of "host" or "host:port" strings');
  }
  const points = contactPoints.map((value: unknown, i) => {
    if (typeof value !== 'string' || value.trim() === '') {
      throw invalid(
        at(path, i),
        `${JSON.stringify(value) ?? String(value)} is invalid: expected "host" or ${HOST_PORT_FORMS}`,
      );
    }
    const parsed = parseHostPort(value, CASSANDRA_DEFAULT_PORT);
    if (typeof parsed === 'string') {
      throw invalid(at(path, i), `${JSON.stringify(value.trim())} ${parsed}`);
    }
    return parsed;
  });
  const ports = [...new Set(points.map((p) => p.port))];
  if (ports.length > 1) {
    // cassandra-driver reaches the nodes it discovers (system.peers) at one cluster-wide port.
    throw invalid(
      path,
      'all contact points must use the same port (cassandra-driver reaches discovered nodes ' +
        `at one port), got ${ports.join(', ')}`,
    );
  }
  return { contactPoints: points.map((p) => formatHostPort(p.host, p.port)), port: ports[0] };
}

/** A CQL identifier, lowercased as Cassandra stores unquoted ones; `fallback` when absent. */
function identifier(path: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !CQL_IDENTIFIER.test(value)) {
    throw invalid(
      path,
      `${JSON.stringify(value)} is not a valid CQL identifier (${IDENTIFIER_RULE})`,
    );
  }
  return value.toLowerCase();
}

function replicationMap(
  path: string,
  value: Record<string, string | number> | undefined,
): Record<string, string | number> {
  const replication = value ?? { class: 'SimpleStrategy', replication_factor: 1 };
  if (
    replication === null ||
    typeof replication !== 'object' ||
    Array.isArray(replication) ||
    typeof replication.class !== 'string' ||
    replication.class === '' ||
    !Object.values(replication).every(
      (v) => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)),
    )
  ) {
    throw invalid(
      path,
      'expected a map with a "class" string and string or number values, ' +
        `e.g. { class: 'NetworkTopologyStrategy', datacenter1: 3 }`,
    );
  }
  return replication;
}

function credentials(
  path: string,
  value: CassandraTierOptions['credentials'],
): CassandraTierOptions['credentials'] {
  if (
    value !== undefined &&
    (value === null || typeof value.username !== 'string' || typeof value.password !== 'string')
  ) {
    throw invalid(path, 'expected { username: string, password: string }');
  }
  if (value !== undefined) onlyKnownKeys(path, value, CREDENTIALS);
  return value;
}
