import { testServers, uniqueName } from '../harness/env';
import { describeStoreConformance } from '../support/store-conformance';

const servers = testServers();
// One keyspace for this file; every store in it still has its own namespace.
const keyspace = uniqueName('conformance').toLowerCase();
const cassandra = { type: 'cassandra' as const, ...servers.cassandra, keyspace };
const memcached = { type: 'memcached' as const, servers: servers.memcached };

describeStoreConformance('memcached tier alone', { tiers: () => [memcached] });
describeStoreConformance('cassandra tier alone', { tiers: () => [cassandra] });
describeStoreConformance('full chain: memory → memcached → cassandra', {
  tiers: () => [{ type: 'memory' }, memcached, cassandra],
});
describeStoreConformance('memory (serialize: false) → memcached → cassandra', {
  tiers: () => [{ type: 'memory', serialize: false }, memcached, cassandra],
  copies: false,
});
describeStoreConformance('two memcached levels: a local 1 s cap in front of the cluster', {
  // The local memcached is not one of the cluster's nodes: were it, both tiers would hold the
  // same keys on it (a delete's tombstone in the near tier would be the far tier's to delete).
  tiers: () => [
    { type: 'memcached', servers: [servers.memcached[0]], ttl: 1000 },
    { type: 'memcached', servers: servers.memcached.slice(1) },
  ],
});
