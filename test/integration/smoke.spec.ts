import { Client as CassandraClient, types } from 'cassandra-driver';
import * as memjs from 'memjs';
import { testServers, uniqueName } from '../harness/env';

const servers = testServers();

describe('real servers', () => {
  it.each(servers.memcached)('memcached %s stores and returns a value', async (address) => {
    const client = memjs.Client.create(address, { retries: 0, timeout: 2, logger: { log() {} } });
    try {
      const key = uniqueName('smoke');
      await client.set(key, 'hello ' + address, { expires: 60 });
      const { value } = await client.get(key);
      expect(value?.toString()).toBe('hello ' + address);
      await client.delete(key);
      expect((await client.get(key)).value).toBeNull();
    } finally {
      client.close();
    }
  });

  it('cassandra creates a keyspace, writes and reads a row', async () => {
    const [host, port] = servers.cassandra.contactPoints[0].split(':');
    const client = new CassandraClient({
      contactPoints: [host],
      protocolOptions: { port: Number(port) },
      localDataCenter: servers.cassandra.localDataCenter,
    });
    const keyspace = uniqueName('smoke').toLowerCase();
    try {
      await client.connect();
      await client.execute(
        `CREATE KEYSPACE ${keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`,
      );
      await client.execute(`CREATE TABLE ${keyspace}.kv (k text PRIMARY KEY, v blob)`);
      await client.execute(
        `INSERT INTO ${keyspace}.kv (k, v) VALUES (?, ?) USING TTL 60`,
        ['a', Buffer.from('b')],
        {
          prepare: true,
        },
      );
      const rs = await client.execute(
        `SELECT v, TTL(v) AS ttl FROM ${keyspace}.kv WHERE k = ?`,
        ['a'],
        {
          prepare: true,
          consistency: types.consistencies.localOne,
        },
      );
      expect(rs.first().get('v').toString()).toBe('b');
      expect(rs.first().get('ttl')).toBeGreaterThan(0);
    } finally {
      await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined);
      await client.shutdown();
    }
  });
});
