import { Client } from 'cassandra-driver';
/** The servers the integration tests use, as the global setup (or the user) named them. */
export interface TestServers {
  memcached: string[];
  cassandra: { contactPoints: string[]; localDataCenter: string };
  /** `redis://host:port` of the shared test Redis (REDIS_URL). */
  redis: { url: string };
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run integration tests through Jest's "integration" project`,
    );
  }
  return value;
}

function list(name: string): string[] {
  return required(name)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

export function testServers(): TestServers {
  return {
    memcached: list('MEMCACHED_SERVERS'),
    cassandra: {
      contactPoints: list('CASSANDRA_CONTACT_POINTS'),
      localDataCenter: process.env.CASSANDRA_LOCAL_DC ?? 'datacenter1',
    },
    redis: { url: required('REDIS_URL').trim() },
  };
}

/**
 * A per-request timeout for tests about what healthy servers answer, not how fast: on a busy
 * machine a burst of a thousand requests can keep memcached or Cassandra answering for longer than
 * the tiers' production defaults (500 ms, 2 s), and a timeout there would fail a test of order or
 * counting for the machine's load alone. Tests of timeouts and failures set their own.
 */
export const PATIENT_TIMEOUT_MS = 15_000;

/** A name unique to this test file and run, safe as a CQL identifier and a memcached key prefix. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`;
}

/** Drops `keyspace` from the test Cassandra after this file's tests (a test file's own data). */
export function dropKeyspaceAfterAll(keyspace: string): void {
  afterAll(async () => {
    const raw = new Client(testServers().cassandra);
    try {
      await raw.execute(`DROP KEYSPACE IF EXISTS "${keyspace}"`);
    } finally {
      await raw.shutdown();
    }
  });
}
