import { Codec, KeyBuilder, type TierOptions } from '../lib';
import { cassandraClient, connectedStore, memjsClient } from './contenders';
import { PRODUCT, productKeys } from './fixtures';
import { isolated, type IsolatedContender } from './isolated';
import { compare, report, type Target } from './measure';
import type { BenchServers } from './servers';

const VALUE = PRODUCT;
const KEYS = productKeys(2000);
const CONCURRENCY = 50;

/**
 * Every contender below runs in a process of its own (see `isolated.ts`) over data this process
 * stored first; rounds are paired and alternate as in every scenario. Rounds are long (a memcached
 * hit round is 20,000 reads, about 0.2 s): a process back from idle runs its first milliseconds
 * slower while its caches refill, and a short round would time that wake-up, not the steady rate.
 */
async function compareIsolated(
  title: string,
  starts: Array<Promise<IsolatedContender>>,
  options: { ops: number; rounds: number },
  targets: Target[],
): Promise<boolean> {
  const contenders = await Promise.allSettled(starts);
  const started = contenders.flatMap((c) => (c.status === 'fulfilled' ? [c.value] : []));
  try {
    const failed = contenders.find((c) => c.status === 'rejected');
    if (failed) throw failed.reason;
    return report(title, await compare(started, options), targets);
  } finally {
    await Promise.all(started.map((c) => c.close()));
  }
}

/** Stores `keys` through a store of `tiers` under `namespace`, as the contenders will read them. */
async function seed(namespace: string, tiers: TierOptions[], keys: string[]): Promise<void> {
  const store = await connectedStore(tiers, namespace);
  for (const k of keys) await store.set(k, VALUE);
  await store.disconnect();
}

/**
 * Stores the bytes the store stores for each key under `prefix` + key with raw memjs, so both
 * sides move the same payload; returns the raw keys.
 */
async function seedRaw(servers: string[], prefix: string, keys: string[]): Promise<string[]> {
  const raw = memjsClient(servers);
  const payload = new Codec().encode(VALUE, 0);
  const rawKeys = keys.map((k) => prefix + k);
  for (const k of rawKeys) await raw.set(k, payload, {});
  raw.close();
  return rawKeys;
}

/**
 * memcached hit with the memory tier empty: the store is `[memory (1 entry), memcached]`, so every
 * read misses memory, hits memcached and backfills memory, against raw memjs gets of the same
 * payload at the same concurrency.
 */
export async function memcachedHit(servers: BenchServers): Promise<boolean> {
  const namespace = `bench${process.pid}`;
  const tiers: TierOptions[] = [
    { type: 'memory', maxEntries: 1 },
    { type: 'memcached', servers: servers.memcached },
  ];
  await seed(namespace, tiers, KEYS);
  const rawKeys = await seedRaw(servers.memcached, 'raw:', KEYS);

  return compareIsolated(
    `memcached hit, memory tier empty (concurrency ${CONCURRENCY})`,
    [
      isolated('raw memjs get', 'memjsGet', {
        servers: servers.memcached,
        keys: rawKeys,
        concurrency: CONCURRENCY,
      }),
      isolated('ours: store get, memcached hit', 'storeGet', {
        tiers,
        namespace,
        keys: KEYS,
        concurrency: CONCURRENCY,
      }),
    ],
    { ops: 20_000, rounds: 21 },
    [
      {
        label: 'store vs raw memjs',
        ours: 'ours: store get, memcached hit',
        baseline: 'raw memjs get',
        atLeast: 0.9,
      },
    ],
  );
}

/** Cassandra hit, `[cassandra]` alone, against a raw prepared SELECT at the same concurrency. */
export async function cassandraHit(servers: BenchServers): Promise<boolean> {
  const keyspace = `bench_${process.pid}`;
  const namespace = 'bench';
  const tiers: TierOptions[] = [{ type: 'cassandra', ...servers.cassandra, keyspace }];
  const keys = KEYS.slice(0, 500);
  await seed(namespace, tiers, keys);
  const contactPoint = servers.cassandra.contactPoints[0];
  const rowKeys = new KeyBuilder({ namespace });
  try {
    return await compareIsolated(
      `Cassandra hit (concurrency ${CONCURRENCY})`,
      [
        isolated('raw cassandra-driver prepared SELECT', 'cassandraSelect', {
          contactPoint,
          localDataCenter: servers.cassandra.localDataCenter,
          select: `SELECT v FROM ${keyspace}.cache WHERE k = ?`,
          // The rows' keys as the store writes them (a fresh namespace is at generation 0).
          keys: keys.map((k) => rowKeys.build(k)),
          concurrency: CONCURRENCY,
        }),
        isolated('ours: store get, Cassandra hit', 'storeGet', {
          tiers,
          namespace,
          keys,
          concurrency: CONCURRENCY,
        }),
      ],
      { ops: 3000, rounds: 9 },
      [
        {
          label: 'store vs raw prepared SELECT',
          ours: 'ours: store get, Cassandra hit',
          baseline: 'raw cassandra-driver prepared SELECT',
          atLeast: 0.9,
        },
      ],
    );
  } finally {
    const admin = cassandraClient(contactPoint, servers.cassandra.localDataCenter);
    await admin.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await admin.shutdown();
  }
}

/** `getMany` of 100 keys from memcached against 100 sequential memjs gets. */
export async function memcachedGetMany(servers: BenchServers): Promise<boolean> {
  const namespace = `benchmany${process.pid}`;
  const tiers: TierOptions[] = [{ type: 'memcached', servers: servers.memcached }];
  const keys = KEYS.slice(0, 100);
  await seed(namespace, tiers, keys);
  const rawKeys = await seedRaw(servers.memcached, 'rawmany:', keys);

  return compareIsolated(
    'getMany of 100 keys from memcached (3 servers)',
    [
      isolated('100 sequential raw memjs gets', 'memjsSequentialGets', {
        servers: servers.memcached,
        keys: rawKeys,
      }),
      isolated('ours: getMany(100 keys)', 'storeGetMany', { tiers, namespace, keys }),
    ],
    { ops: 100, rounds: 5 },
    [
      {
        label: 'getMany vs sequential gets',
        ours: 'ours: getMany(100 keys)',
        baseline: '100 sequential raw memjs gets',
        atLeast: 5,
      },
    ],
  );
}
