import { CassandraNode } from '../test/harness/cassandra';
import { MemcachedNode } from '../test/harness/memcached';

export interface BenchServers {
  memcached: string[];
  cassandra: { contactPoints: string[]; localDataCenter: string };
  stop(): Promise<void>;
}

/**
 * Real servers for the benchmarks: those named by MEMCACHED_SERVERS / CASSANDRA_CONTACT_POINTS,
 * else three memcached processes and one Cassandra node on free loopback ports (the test harness).
 */
export async function benchServers(): Promise<BenchServers> {
  const started: Array<{ stop(): Promise<void> }> = [];
  let memcached = process.env.MEMCACHED_SERVERS?.split(',').filter(Boolean);
  let contactPoints = process.env.CASSANDRA_CONTACT_POINTS?.split(',').filter(Boolean);
  const [mc, cs] = await Promise.all([
    memcached
      ? undefined
      : Promise.all([MemcachedNode.start(), MemcachedNode.start(), MemcachedNode.start()]),
    contactPoints ? undefined : CassandraNode.start(),
  ]);
  if (mc) {
    started.push(...mc);
    memcached = mc.map((n) => n.address);
  }
  if (cs) {
    started.push(cs);
    contactPoints = [cs.address];
  }
  return {
    memcached: memcached!,
    cassandra: {
      contactPoints: contactPoints!,
      localDataCenter: process.env.CASSANDRA_LOCAL_DC ?? 'datacenter1',
    },
    stop: async () => void (await Promise.all(started.map((s) => s.stop()))),
  };
}
