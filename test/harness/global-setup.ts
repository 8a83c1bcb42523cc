import { CassandraNode } from './cassandra';
import globalTeardown from './global-teardown';
import { MemcachedNode } from './memcached';

/** What the setup started, kept for the teardown (both run in Jest's parent process). */
export interface StartedServers {
  memcached: MemcachedNode[];
  cassandra?: CassandraNode;
}

declare global {
  var __tieredCacheServers: StartedServers | undefined;
}

/**
 * Starts three memcached processes and one Cassandra node on free loopback ports, unless the
 * environment already names servers (MEMCACHED_SERVERS, CASSANDRA_CONTACT_POINTS), and hands
 * their addresses to the test workers through those same variables.
 */
export default async function globalSetup(): Promise<void> {
  const started: StartedServers = { memcached: [] };
  globalThis.__tieredCacheServers = started;
  const t0 = Date.now();
  const tasks: Promise<void>[] = [];

  if (!process.env.MEMCACHED_SERVERS) {
    tasks.push(
      (async () => {
        for (let i = 0; i < 3; i++) started.memcached.push(await MemcachedNode.start());
        process.env.MEMCACHED_SERVERS = started.memcached.map((n) => n.address).join(',');
      })(),
    );
  }
  if (!process.env.CASSANDRA_CONTACT_POINTS) {
    tasks.push(
      (async () => {
        started.cassandra = await CassandraNode.start();
        process.env.CASSANDRA_CONTACT_POINTS = started.cassandra.address;
      })(),
    );
  }
  process.env.CASSANDRA_LOCAL_DC ??= 'datacenter1';

  const results = await Promise.allSettled(tasks);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await globalTeardown();
    throw failed.reason;
  }
  process.stdout.write(
    `\ntest servers ready in ${Date.now() - t0} ms: memcached ${process.env.MEMCACHED_SERVERS}; ` +
      `cassandra ${process.env.CASSANDRA_CONTACT_POINTS} (${process.env.CASSANDRA_LOCAL_DC})\n`,
  );
}
