import { Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Socket } from 'node:net';
import type { TierOptions, TieredCacheModuleOptions } from '../lib';

/** Whether something accepts TCP connections at `host:port` within `timeoutMs`. */
function reachable(address: string, defaultPort: number, timeoutMs = 500): Promise<boolean> {
  const at = address.lastIndexOf(':');
  const host = at > 0 ? address.slice(0, at) : address;
  const port = at > 0 ? Number(address.slice(at + 1)) : defaultPort;
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, host, () => done(true));
  });
}

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * The sample's cache options, from the environment (MEMCACHED_SERVERS, CASSANDRA_CONTACT_POINTS,
 * CASSANDRA_LOCAL_DC, REDIS_URL, CACHE_NAMESPACE). Servers that do not answer are left out, so the
 * app always starts: with no server configured or reachable it runs on the memory tier alone.
 * REDIS_URL adds the invalidation bus, which keeps the memory tiers of several instances coherent.
 * The cache's Prometheus metrics go to prom-client's default registry (see `GET /metrics`).
 */
export async function cacheOptions(config: ConfigService): Promise<TieredCacheModuleOptions> {
  const logger = new Logger('Sample');
  const tiers: TierOptions[] = [{ type: 'memory', ttl: 5_000 }];
  const memcached = list(config.get('MEMCACHED_SERVERS'));
  const upMemcached = (await Promise.all(memcached.map((s) => reachable(s, 11211)))).every(Boolean);
  if (memcached.length > 0 && upMemcached) tiers.push({ type: 'memcached', servers: memcached });
  const cassandra = list(config.get('CASSANDRA_CONTACT_POINTS'));
  const upCassandra = cassandra.length > 0 && (await reachable(cassandra[0], 9042));
  if (upCassandra) {
    tiers.push({
      type: 'cassandra',
      contactPoints: cassandra,
      localDataCenter: config.get('CASSANDRA_LOCAL_DC') ?? 'datacenter1',
      keyspace: 'tiered_cache_sample',
    });
  }
  if (tiers.length === 1) {
    logger.log(
      memcached.length + cassandra.length === 0
        ? 'no cache servers configured (MEMCACHED_SERVERS, CASSANDRA_CONTACT_POINTS): running on the memory tier alone'
        : 'configured cache servers are not reachable: running on the memory tier alone',
    );
  } else {
    logger.log(`cache tiers: ${tiers.map((t) => t.type).join(' → ')}`);
  }
  const redis = config.get<string>('REDIS_URL');
  const bus =
    redis !== undefined && (await reachable(new URL(redis).host, 6379))
      ? { type: 'redis' as const, url: redis }
      : undefined;
  if (redis !== undefined)
    logger.log(
      bus
        ? `invalidation bus on ${redis}`
        : `REDIS_URL ${redis} is not reachable: no invalidation bus`,
    );
  return {
    namespace: config.get('CACHE_NAMESPACE') ?? 'sample',
    ttl: 60_000,
    tiers,
    ...(bus && { bus }),
    // Prometheus metrics in prom-client's default registry, served on GET /metrics.
    metrics: true,
  };
}
