import { CassandraNode } from './cassandra';
import globalTeardown from './global-teardown';
import { MemcachedNode } from './memcached';
import { RedisNode } from './redis';

/** What the setup started, kept for the teardown (both run in Jest's parent process). */
export interface StartedServers {
  memcached: MemcachedNode[];
  cassandra?: CassandraNode;
  redis?: RedisNode;
}

declare global {
  var __tieredCacheServers: StartedServers | undefined;
}

/**
 * Starts three memcached processes, one Cassandra node and one Redis on free loopback ports,
 * unless the environment already names servers (MEMCACHED_SERVERS, CASSANDRA_CONTACT_POINTS,
 * REDIS_URL), and hands their addresses to the test workers through those same variables.
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
  if (!process.env.REDIS_URL) {
    tasks.push(
      (async () => {
        started.redis = await RedisNode.start();
        process.env.REDIS_URL = started.redis.url;
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
      `cassandra ${process.env.CASSANDRA_CONTACT_POINTS} (${process.env.CASSANDRA_LOCAL_DC}); ` +
      `redis ${process.env.REDIS_URL}\n`,
  );
}
