import { Client } from 'cassandra-driver';
import type { CassandraTierOptions } from '../../lib/tiers/cassandra/cassandra.options';
import { CassandraTier } from '../../lib/tiers/cassandra/cassandra.tier';
import { testServers, uniqueName } from '../harness/env';

const servers = testServers().cassandra;
/** Instances starting at the same moment, each with its own driver client. */
const INSTANCES = 8;
/** Fresh keyspaces tried: the race does not show on every attempt. */
const ROUNDS = 4;

const keyspaces: string[] = [];

afterAll(async () => {
  const raw = new Client(servers);
  try {
    for (const ks of keyspaces) await raw.execute(`DROP KEYSPACE IF EXISTS "${ks}"`);
  } finally {
    await raw.shutdown();
  }
}, 120_000);

describe('CassandraTier: concurrent first start on a new keyspace', () => {
  it(`${INSTANCES} instances creating one new keyspace at once all connect, and share their data`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const keyspace = uniqueName(`race${round}`).toLowerCase();
      keyspaces.push(keyspace);
      const options: CassandraTierOptions = {
        type: 'cassandra',
        contactPoints: servers.contactPoints,
        localDataCenter: servers.localDataCenter,
        keyspace,
        // DDL on a busy single node can take seconds.
        timeout: 20_000,
      };
      const tiers = Array.from(
        { length: INSTANCES },
        (_, i) => new CassandraTier(options, { name: `race[${i}]` }),
      );
      try {
        const results = await Promise.allSettled(tiers.map((t) => t.connect()));
        const errors = results.flatMap((r, i) =>
          r.status === 'rejected' ? [`race[${i}]: ${(r.reason as Error).message}`] : [],
        );
        expect({ round, errors }).toEqual({ round, errors: [] });
        // A write by one is read by all, values and counters alike.
        await tiers[0].set('shared', Buffer.from(`round ${round}`), 60_000);
        await tiers[1].increment('hits', 3, 0);
        for (const t of tiers) {
          expect(await t.get('shared')).toEqual(Buffer.from(`round ${round}`));
          expect(await t.increment('hits', 0, 0)).toBe(3);
        }
      } finally {
        await Promise.all(tiers.map((t) => t.close()));
      }
    }
  }, 300_000);
});
