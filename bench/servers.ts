import { CassandraNode } from '../test/harness/cassandra';
import { MemcachedNode } from '../test/harness/memcached';
import { RedisNode } from '../test/harness/redis';

export type ServerKind = 'memcached' | 'cassandra' | 'redis';

export interface BenchServers {
  memcached: string[];
  cassandra: { contactPoints: string[]; localDataCenter: string };
  /** `redis://host:port` (empty until a scenario needs Redis). */
  redis: { url: string };
}

/**
 * Real servers for the benchmarks: those named by MEMCACHED_SERVERS / CASSANDRA_CONTACT_POINTS /
 * REDIS_URL, else three memcached processes, one Cassandra node and one Redis on free loopback
 * ports (the test harness), each kind started when a scenario first needs it. Scenarios that need
 * memcached (and Redis) alone run before Cassandra starts, so its JVM's background work is not in
 * their figures.
 */
export class BenchServerPool {
  private readonly started: Array<{ stop(): Promise<void> }> = [];
  private memcached = process.env.MEMCACHED_SERVERS?.split(',').filter(Boolean);
  private contactPoints = process.env.CASSANDRA_CONTACT_POINTS?.split(',').filter(Boolean);
  private redisUrl = process.env.REDIS_URL?.trim() || undefined;

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
    if (needs.includes('redis') && !this.redisUrl) {
      const node = await RedisNode.start();
      this.started.push(node);
      this.redisUrl = node.url;
    }
    return {
      memcached: this.memcached ?? [],
      cassandra: {
        contactPoints: this.contactPoints ?? [],
        localDataCenter: process.env.CASSANDRA_LOCAL_DC ?? 'datacenter1',
      },
      redis: { url: this.redisUrl ?? '' },
    };
  }

  async stop(): Promise<void> {
    await Promise.all(this.started.splice(0).map((s) => s.stop()));
  }
}
