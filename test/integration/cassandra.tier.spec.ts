import { Client, types } from 'cassandra-driver';
import type { CassandraTierOptions } from '../../lib/tiers/cassandra/cassandra.options';
import { CassandraTier } from '../../lib/tiers/cassandra/cassandra.tier';
import { testServers, uniqueName } from '../harness/env';
import { freePort } from '../harness/ports';

const servers = testServers().cassandra;
const keyspace = uniqueName('cassandra_tier').toLowerCase();

const options: CassandraTierOptions = {
  type: 'cassandra',
  contactPoints: servers.contactPoints,
  localDataCenter: servers.localDataCenter,
  keyspace,
  // DDL on a cold single node can take a few seconds.
  timeout: 10_000,
};

/** A raw driver client, to read what the tier wrote (TTL(v)) without going through the tier. */
const raw = new Client({
  contactPoints: servers.contactPoints,
  localDataCenter: servers.localDataCenter,
});

let tier: CassandraTier;
let second: CassandraTier;

beforeAll(async () => {
  tier = new CassandraTier(options);
  second = new CassandraTier(options, { name: 'cassandra[2]' });
  // Schema creation is idempotent: both tiers create the same keyspace and tables.
  await tier.connect();
  await second.connect();
  await raw.connect();
});

afterAll(async () => {
  await tier?.close();
  await second?.close();
  await raw.execute(`DROP KEYSPACE IF EXISTS "${keyspace}"`).catch(() => undefined);
  await raw.shutdown();
});

async function rawTtl(key: string): Promise<number | null> {
  const rs = await raw.execute(`SELECT TTL(v) AS t FROM "${keyspace}".cache WHERE k = ?`, [key], {
    prepare: true,
  });
  const row = rs.first();
  if (!row) throw new Error(`no row for ${key}`);
  return row.get('t') as number | null;
}

describe('CassandraTier on a real Cassandra', () => {
  it('creates the schema idempotently: a second tier connected to the same keyspace', async () => {
    const third = new CassandraTier(options, { name: 'cassandra[3]' });
    await third.connect();
    await third.set('schema-check', Buffer.from('x'), 60_000);
    expect(await tier.get('schema-check')).toEqual(Buffer.from('x'));
    await third.close();
    // Through driver metadata, so that this also holds on Cassandra 3+ (system_schema).
    const data = await raw.metadata.getTable(keyspace, 'cache');
    const counters = await raw.metadata.getTable(keyspace, 'cache_counters');
    expect(data.columns.map((c) => `${c.name} ${c.type.code}`).sort()).toEqual([
      `k ${types.dataTypes.varchar}`,
      `v ${types.dataTypes.blob}`,
    ]);
    expect(data.partitionKeys.map((c) => c.name)).toEqual(['k']);
    expect(counters.columns.map((c) => `${c.name} ${c.type.code}`).sort()).toEqual([
      `c ${types.dataTypes.counter}`,
      `k ${types.dataTypes.varchar}`,
    ]);
  });

  it('delete and deleteMany of a counter resolve whether it was non-zero', async () => {
    const missing = uniqueName('del-missing');
    const counter = uniqueName('del-counter');
    const zero = uniqueName('del-zero');
    // A key that only has a counter: true while it is non-zero, false once reset.
    expect(await tier.increment(counter, 5, 0)).toBe(5);
    expect(await second.delete(counter)).toBe(true);
    expect(await tier.delete(counter)).toBe(false);
    // A counter at zero holds nothing.
    expect(await tier.increment(zero, 0, 0)).toBe(0);
    expect(await tier.delete(zero)).toBe(false);
    // A value and a counter under one key.
    await tier.set(counter, Buffer.from('both'), 60_000);
    expect(await tier.increment(counter, 1, 0)).toBe(1);
    expect(await tier.delete(counter)).toBe(true);
    expect(await tier.get(counter)).toBeUndefined();
    expect(await tier.increment(counter, 1, 0)).toBe(1);

    // deleteMany: true when any key held a non-zero counter.
    expect(await tier.deleteMany([missing, counter])).toBe(true); // counter-only, at 1
    expect(await tier.deleteMany([counter, zero])).toBe(false);
  });

  it('applies the TTL in whole seconds, rounded up, and none for ttl 0', async () => {
    await tier.set('ttl-60s', Buffer.from('a'), 60_000);
    const ttl = await rawTtl('ttl-60s');
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60);

    await tier.set('ttl-1ms', Buffer.from('b'), 1);
    const short = await rawTtl('ttl-1ms').catch(() => null); // may already have expired
    if (short !== null) expect(short).toBeLessThanOrEqual(1);

    await tier.set('ttl-none', Buffer.from('c'), 0);
    expect(await rawTtl('ttl-none')).toBeNull();

    // Twenty years is capped so the expiration stays before 2038: the value is stored and readable.
    await tier.set('ttl-20y', Buffer.from('d'), 630_720_000 * 1000);
    expect(await tier.get('ttl-20y')).toEqual(Buffer.from('d'));
    const long = await rawTtl('ttl-20y');
    expect(long).toBeGreaterThan(0);
    expect(long).toBeLessThanOrEqual(630_720_000);
  });

  it('a 1 ms TTL rounds up to 1 s: the entry is gone within seconds', async () => {
    await tier.set('expiring', Buffer.from('x'), 1);
    const deadline = Date.now() + 10_000; // 1 s, and room for a busy machine
    while ((await tier.get('expiring')) !== undefined) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  it('the row that 20 concurrent adds leave carries their TTL', async () => {
    const key = uniqueName('add');
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? second : tier).add(key, Buffer.from(`writer-${i}`), 60_000),
      ),
    );
    const ttl = await rawTtl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60);
  });

  it('add without TTL writes the row with no TTL', async () => {
    const key = uniqueName('add0');
    expect(await tier.add(key, Buffer.from('one'), 0)).toBe(true);
    expect(await rawTtl(key)).toBeNull();
  });

  it('increment rejects a `by` that is not a safe integer', async () => {
    await expect(tier.increment(uniqueName('neg'), 1.5, 0)).rejects.toThrow(RangeError);
  });

  it('concurrent deletes of a counter subtract once; a key never counted is deleted harmlessly', async () => {
    const key = uniqueName('reset');
    expect(await tier.increment(key, 41, 0)).toBe(41);
    // Coalesced: subtracts once, and both report the counter they reset.
    expect(await Promise.all([tier.delete(key), tier.delete(key)])).toEqual([true, true]);
    expect(await tier.increment(key, 1, 0)).toBe(1);
    expect(await tier.deleteMany([key, key])).toBe(true);
    // A key that never had a counter is deleted without creating trouble for a later one.
    const fresh = uniqueName('fresh');
    await tier.delete(fresh);
    expect(await tier.increment(fresh, 2, 0)).toBe(2);
  });

  it('rejects operations before connect, connect after close, and names the closed tier', async () => {
    const idle = new CassandraTier(options, { name: 'idle' });
    await expect(idle.get('x')).rejects.toThrow(
      'cassandra tier "idle" is not connected: call connect() first',
    );
    await expect(idle.get('x')).rejects.toMatchObject({ code: 'E_NOT_CONNECTED' });
    await idle.close();
    await expect(idle.connect()).rejects.toThrow('cassandra tier "idle" is closed');
    await expect(idle.connect()).rejects.toMatchObject({ code: 'E_CLOSED' });

    const closing = new CassandraTier(options, { name: 'closing' });
    await closing.connect();
    await closing.close();
    await expect(closing.set('x', Buffer.from('x'), 0)).rejects.toThrow('is closed');
  });
});

describe('CassandraTier close', () => {
  function resources(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
    return counts;
  }

  it('close() releases every socket and timer the tier opened', async () => {
    const before = resources();
    const t = new CassandraTier(options, { name: 'handles' });
    await t.connect();
    await t.set('handles', Buffer.from('x'), 60_000);
    expect(resources().TCPSocketWrap ?? 0).toBeGreaterThan(before.TCPSocketWrap ?? 0);
    await t.close();
    // Socket close callbacks, and short timers of other code in this process, settle within a
    // moment; a leaked driver heartbeat (every 30 s) or socket would not.
    const released = () => {
      const now = resources();
      return (
        (now.TCPSocketWrap ?? 0) <= (before.TCPSocketWrap ?? 0) &&
        (now.Timeout ?? 0) <= (before.Timeout ?? 0)
      );
    };
    for (let waited = 0; !released() && waited < 2000; waited += 20) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const after = resources();
    expect(after.TCPSocketWrap ?? 0).toBeLessThanOrEqual(before.TCPSocketWrap ?? 0);
    expect(after.Timeout ?? 0).toBeLessThanOrEqual(before.Timeout ?? 0);
  });
});

describe('CassandraTier failures', () => {
  it('with createSchema false, fails at connect naming the missing keyspace', async () => {
    const missing = uniqueName('missing_ks').toLowerCase();
    const t = new CassandraTier({ ...options, keyspace: missing, createSchema: false });
    await expect(t.connect()).rejects.toThrow(
      `keyspace "${missing}" does not exist and createSchema is false`,
    );
    await expect(t.connect()).rejects.toMatchObject({ code: 'E_SCHEMA' });
    await t.close();
  });

  it('with createSchema false, fails at connect naming a missing table, and works once it exists', async () => {
    const t = new CassandraTier(
      { ...options, table: 'other', createSchema: false },
      { name: 'noschema' },
    );
    await expect(t.connect()).rejects.toThrow(
      `cassandra tier "noschema": table "${keyspace}"."other" does not exist and createSchema is false`,
    );
    await raw.execute(`CREATE TABLE "${keyspace}".other (k text PRIMARY KEY, v blob)`);
    await expect(t.connect()).rejects.toThrow(
      `table "${keyspace}"."other_counters" does not exist`,
    );
    await raw.execute(`CREATE TABLE "${keyspace}".other_counters (k text PRIMARY KEY, c counter)`);
    await t.connect();
    await t.set('k', Buffer.from('v'), 60_000);
    expect(await t.get('k')).toEqual(Buffer.from('v'));
    await t.close();
  });

  it('rejects quickly, naming the contact point, when nothing listens on the port', async () => {
    const port = await freePort();
    const t = new CassandraTier({ ...options, contactPoints: [`127.0.0.1:${port}`] });
    const started = Date.now();
    await expect(t.connect()).rejects.toThrow(
      `cassandra tier "cassandra": cannot connect to 127.0.0.1:${port}`,
    );
    expect(Date.now() - started).toBeLessThan(5000);
    await expect(t.connect()).rejects.toMatchObject({ code: 'E_UNREACHABLE' });
    await t.close();
  });

  it('rejects with the data centers found when localDataCenter is wrong', async () => {
    const t = new CassandraTier({ ...options, localDataCenter: 'nowhere' });
    await expect(t.connect()).rejects.toThrow(/cannot connect to .*local data center "nowhere"/);
    await t.close();
  });
});
