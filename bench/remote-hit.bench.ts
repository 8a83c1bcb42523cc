import { Client as CassandraClient, types } from 'cassandra-driver';
import * as memjs from 'memjs';
import { Codec, TieredStore } from '../lib';
import { PRODUCT, productKeys } from './fixtures';
import { compare, concurrently, report } from './measure';
import type { BenchServers } from './servers';

const VALUE = PRODUCT;
const KEYS = productKeys(2000);
const CONCURRENCY = 50;
const quiet = { log() {} };

/**
 * memcached hit with the memory tier empty: the store is `[memory (1 entry), memcached]`, so every
 * read misses memory, hits memcached and backfills memory, against raw memjs gets of the same
 * payload at the same concurrency.
 */
export async function memcachedHit(servers: BenchServers): Promise<boolean> {
  const store = new TieredStore({
    namespace: `bench${process.pid}`,
    tiers: [
      { type: 'memory', maxEntries: 1 },
      { type: 'memcached', servers: servers.memcached },
    ],
  });
  await store.connect({ failFast: true });
  const raw = memjs.Client.create(servers.memcached.join(','), { retries: 0, logger: quiet });
  for (const k of KEYS) await store.set(k, VALUE);
  // The raw client stores the very bytes the store stores, so both move the same payload.
  const payload = new Codec().encode(VALUE, 0);
  for (const k of KEYS) await raw.set(`raw:${k}`, payload, {});

  const results = await compare(
    [
      {
        name: 'raw memjs get',
        run: (ops) =>
          concurrently(ops, CONCURRENCY, async (i) => {
            if (!(await raw.get(`raw:${KEYS[i % KEYS.length]}`)).value) throw new Error('miss');
          }),
      },
      {
        name: 'ours: store get, memcached hit',
        run: (ops) =>
          concurrently(ops, CONCURRENCY, async (i) => {
            if ((await store.get(KEYS[i % KEYS.length])) === undefined) throw new Error('miss');
          }),
      },
    ],
    { ops: 5000, rounds: 21 },
  );
  const ok = report(`memcached hit, memory tier empty (concurrency ${CONCURRENCY})`, results, [
    {
      label: 'store vs raw memjs',
      ours: 'ours: store get, memcached hit',
      baseline: 'raw memjs get',
      atLeast: 0.9,
    },
  ]);
  raw.close();
  await store.disconnect();
  return ok;
}

/** Cassandra hit, `[cassandra]` alone, against a raw prepared SELECT at the same concurrency. */
export async function cassandraHit(servers: BenchServers): Promise<boolean> {
  const keyspace = `bench_${process.pid}`;
  const store = new TieredStore({
    namespace: 'bench',
    tiers: [{ type: 'cassandra', ...servers.cassandra, keyspace }],
  });
  await store.connect({ failFast: true });
  const [host, port] = servers.cassandra.contactPoints[0].split(':');
  const raw = new CassandraClient({
    contactPoints: [host],
    protocolOptions: { port: Number(port ?? 9042) },
    localDataCenter: servers.cassandra.localDataCenter,
  });
  await raw.connect();
  const keys = KEYS.slice(0, 500);
  for (const k of keys) await store.set(k, VALUE);
  const select = `SELECT v FROM ${keyspace}.cache WHERE k = ?`;
  const options = { prepare: true, consistency: types.consistencies.localOne };

  const results = await compare(
    [
      {
        name: 'raw cassandra-driver prepared SELECT',
        run: (ops) =>
          concurrently(ops, CONCURRENCY, async (i) => {
            const rs = await raw.execute(select, [`bench:1:0:${keys[i % keys.length]}`], options);
            if (!rs.first()) throw new Error('miss');
          }),
      },
      {
        name: 'ours: store get, Cassandra hit',
        run: (ops) =>
          concurrently(ops, CONCURRENCY, async (i) => {
            if ((await store.get(keys[i % keys.length])) === undefined) throw new Error('miss');
          }),
      },
    ],
    { ops: 3000, rounds: 9 },
  );
  const ok = report(`Cassandra hit (concurrency ${CONCURRENCY})`, results, [
    {
      label: 'store vs raw prepared SELECT',
      ours: 'ours: store get, Cassandra hit',
      baseline: 'raw cassandra-driver prepared SELECT',
      atLeast: 0.9,
    },
  ]);
  await raw.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  await raw.shutdown();
  await store.disconnect();
  return ok;
}

/** `getMany` of 100 keys from memcached against 100 sequential memjs gets. */
export async function memcachedGetMany(servers: BenchServers): Promise<boolean> {
  const store = new TieredStore({
    namespace: `benchmany${process.pid}`,
    tiers: [{ type: 'memcached', servers: servers.memcached }],
  });
  await store.connect({ failFast: true });
  const raw = memjs.Client.create(servers.memcached.join(','), { retries: 0, logger: quiet });
  const keys = KEYS.slice(0, 100);
  for (const k of keys) {
    await store.set(k, VALUE);
    await raw.set(`rawmany:${k}`, new Codec().encode(VALUE, 0), {});
  }
  const results = await compare(
    [
      {
        name: '100 sequential raw memjs gets',
        run: async (ops) => {
          for (let o = 0; o < ops; o++) for (const k of keys) await raw.get(`rawmany:${k}`);
        },
      },
      {
        name: 'ours: getMany(100 keys)',
        run: async (ops) => {
          for (let o = 0; o < ops; o++) {
            const values = await store.getMany(keys);
            if (values[99] === undefined) throw new Error('miss');
          }
        },
      },
    ],
    { ops: 20, rounds: 5 },
  );
  const ok = report('getMany of 100 keys from memcached (3 servers)', results, [
    {
      label: 'getMany vs sequential gets',
      ours: 'ours: getMany(100 keys)',
      baseline: '100 sequential raw memjs gets',
      atLeast: 5,
    },
  ]);
  raw.close();
  await store.disconnect();
  return ok;
}
