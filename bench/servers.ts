import { CassandraNode } from '../test/harness/cassandra';
import { MemcachedNode } from '../test/harness/memcached';

export type ServerKind = 'memcached' | 'cassandra';

export interface BenchServers {
  memcached: string[];
  cassandra: { contactPoints: string[]; localDataCenter: string };
}

/**
 * Real servers for the benchmarks: those named by MEMCACHED_SERVERS / CASSANDRA_CONTACT_POINTS,
 * else three memcached processes and one Cassandra node on free loopback ports (the test harness),
 * each kind started when a scenario first needs it. Scenarios that need memcached alone run
 * before Cassandra starts, so its JVM's background work is not in their figures.
 */
export class BenchServerPool {
  private readonly started: Array<{ stop(): Promise<void> }> = [];
  private memcached = process.env.MEMCACHED_SERVERS?.split(',').filter(Boolean);
  private contactPoints = process.env.CASSANDRA_CONTACT_POINTS?.split(',').filter(Boolean);

  /** The servers, after starting the kinds in `needs` that are not running yet. */
  async ensure(needs: readonly ServerKind[]): Promise<BenchServers> {
    if (needs.includes('memcached') && !this.memcached) {
      const nodes = await Promise.all([0, 1, 2].map(() => MemcachedNode.start()));
      this.started.push(...nodes);
      this.memcached = nodes.map((n) => n.address);
    }
    if (needs.includes('cassandra') && !this.contactPoints) {
      const node = await CassandraNode.start();
      this.started.push(node);
      this.contactPoints = [node.address];
    }
    return {
      memcached: this.memcached ?? [],
      cassandra: {
        contactPoints: this.contactPoints ?? [],
        localDataCenter: process.env.CASSANDRA_LOCAL_DC ?? 'datacenter1',
      },
    };
  }

  async stop(): Promise<void> {
    await Promise.all(this.started.splice(0).map((s) => s.stop()));
  }
}
