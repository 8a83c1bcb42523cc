import { randomBytes } from 'node:crypto';
import { ValueTooLargeError } from '../../lib/errors';
import { TieredStore } from '../../lib/store/tiered-store';
import type { CassandraTierOptions } from '../../lib/tiers/cassandra/cassandra.options';
import { CassandraTier } from '../../lib/tiers/cassandra/cassandra.tier';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import { eventually } from '../support/eventually';
import { ManualClock } from '../support/manual-clock';
import { TcpRelay } from '../support/tcp-relay';

const servers = testServers().cassandra;
const keyspace = uniqueName('cassandra_limits').toLowerCase();
dropKeyspaceAfterAll(keyspace);

const options: CassandraTierOptions = {
  type: 'cassandra',
  contactPoints: servers.contactPoints,
  localDataCenter: servers.localDataCenter,
  keyspace,
  // Large mutations and DDL on a busy single node can take seconds.
  timeout: 10_000,
};

/** The default `maxValueBytes`: 16 MiB (Cassandra's default largest mutation) minus 128 KiB. */
const DEFAULT_MAX_VALUE_BYTES = 16 * 1024 * 1024 - 128 * 1024;

let tier: CassandraTier;

beforeAll(async () => {
  tier = new CassandraTier(options, { name: 'limits' });
  await tier.connect();
});

afterAll(async () => {
  await tier?.close();
});

/** A value of `n` bytes whose content is checked on read-back (not all one byte). */
function bytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 12)) & 0xff;
  return b;
}

describe('CassandraTier value limit', () => {
  it('declares its limit: 16 MiB minus 128 KiB by default, or the maxValueBytes option', () => {
    expect(tier.capabilities.maxValueBytes).toBe(DEFAULT_MAX_VALUE_BYTES);
    const small = new CassandraTier({ ...options, maxValueBytes: 1000 });
    expect(small.capabilities.maxValueBytes).toBe(1000);
    // The other capabilities are the tier's.
    expect(small.capabilities.counters).toBe('additive');
  });

  it('the real server accepts a value of the default limit, even under the longest key', async () => {
    // 65,535 bytes: the longest key the tier accepts (maxKeyBytes).
    const key = 'k'.repeat(tier.capabilities.maxKeyBytes);
    const value = bytes(DEFAULT_MAX_VALUE_BYTES);
    await tier.set(key, value, 60_000);
    const back = await tier.get(key);
    expect(back?.length).toBe(value.length);
    expect(back?.equals(value)).toBe(true);
  }, 120_000);

  it('a value just under the limit reads back intact', async () => {
    const key = uniqueName('under');
    const value = bytes(DEFAULT_MAX_VALUE_BYTES - 1);
    await tier.set(key, value, 60_000);
    expect((await tier.get(key))?.equals(value)).toBe(true);
  }, 120_000);

  it('refuses limit + 1 at once, without sending it: ValueTooLargeError, tooLarge', async () => {
    const key = uniqueName('over');
    await tier.set(key, Buffer.from('older'), 60_000);
    const started = Date.now();
    const err: unknown = await tier
      .set(key, Buffer.alloc(DEFAULT_MAX_VALUE_BYTES + 1), 60_000)
      .catch((e: unknown) => e);
    // Well below the 10 s timeout, and below the server's own 2 s write timeout.
    expect(Date.now() - started).toBeLessThan(1500);
    expect(err).toBeInstanceOf(ValueTooLargeError);
    expect(err).toMatchObject({
      code: 'E_TOO_LARGE',
      tooLarge: true,
      bytes: DEFAULT_MAX_VALUE_BYTES + 1,
      limit: DEFAULT_MAX_VALUE_BYTES,
    });
    expect((err as Error).message).toBe(
      `cassandra tier "limits": the value of "${key}" is ${DEFAULT_MAX_VALUE_BYTES + 1} bytes, ` +
        `over maxValueBytes (${DEFAULT_MAX_VALUE_BYTES})`,
    );
    // Nothing was sent: the older value is still there.
    expect(await tier.get(key)).toEqual(Buffer.from('older'));
  });

  it('a smaller maxValueBytes refuses limit + 1 in set, add and setMany; setMany stores the rest', async () => {
    const small = new CassandraTier({ ...options, maxValueBytes: 1000 }, { name: 'small' });
    await small.connect();
    try {
      const [fits, over, rest] = [uniqueName('fits'), uniqueName('over'), uniqueName('rest')];
      await small.set(fits, Buffer.alloc(1000, 1), 60_000);
      expect((await small.get(fits))?.length).toBe(1000);
      await expect(small.set(over, Buffer.alloc(1001), 60_000)).rejects.toMatchObject({
        tooLarge: true,
        bytes: 1001,
        limit: 1000,
      });
      await expect(small.add(over, Buffer.alloc(1001), 60_000)).rejects.toBeInstanceOf(
        ValueTooLargeError,
      );
      await expect(
        small.setMany([
          { key: over, value: Buffer.alloc(1001), ttlMs: 60_000 },
          { key: rest, value: Buffer.from('rest'), ttlMs: 60_000 },
        ]),
      ).rejects.toMatchObject({ tooLarge: true, bytes: 1001 });
      expect(await small.get(rest)).toEqual(Buffer.from('rest'));
      expect(await small.get(over)).toBeUndefined();
    } finally {
      await small.close();
    }
  });
});

describe('CassandraTier timeouts', () => {
  const TIMEOUT = 1000;
  let relay: TcpRelay;
  let hanging: CassandraTier;

  beforeAll(async () => {
    relay = await TcpRelay.start(servers.contactPoints[0]);
    hanging = new CassandraTier(
      { ...options, contactPoints: [relay.address], timeout: TIMEOUT },
      { name: 'hung' },
    );
    // Connect (and create the schema) with a long timeout first: DDL can be slow.
    const setup = new CassandraTier({ ...options, contactPoints: [relay.address] });
    await setup.connect();
    await setup.close();
    await hanging.connect();
    await hanging.set('before', Buffer.from('x'), 60_000);
  });

  afterAll(async () => {
    relay?.resume();
    await hanging?.close();
    await relay?.close();
  });

  afterEach(() => relay.resume());

  it.each([
    ['get', () => hanging.get('before')],
    ['set', () => hanging.set('k', Buffer.from('v'), 60_000)],
    ['increment', () => hanging.increment('n', 1, 0)],
    ['delete', () => hanging.delete('before')],
    ['add', () => hanging.add('lease', Buffer.from('v'), 60_000)],
  ] as const)(
    'a hung node: %s rejects after one timeout, with timedOut and a message naming the tier and operation',
    async (operation, run) => {
      relay.hang();
      const started = Date.now();
      const err: unknown = await run().catch((e: unknown) => e);
      const elapsed = Date.now() - started;
      expect(err).toBeInstanceOf(Error);
      expect(err).toMatchObject({ timedOut: true });
      expect((err as Error).message).toMatch(
        new RegExp(`^cassandra tier "hung": ${operation} .*timed out after ${TIMEOUT} ms`),
      );
      expect((err as Error).cause).toBeInstanceOf(Error);
      // One timeout, not two (a second statement after the first timed out).
      expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT - 50);
      expect(elapsed).toBeLessThan(2 * TIMEOUT);
    },
  );

  it('other errors carry no timedOut', async () => {
    const idle = new CassandraTier(options, { name: 'idle' });
    const err: unknown = await idle.get('x').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_NOT_CONNECTED' });
    expect((err as { timedOut?: boolean }).timedOut).toBeUndefined();
  });

  it('a value over what the server takes gets the server write timeout: timedOut', async () => {
    // maxValueBytes set beyond the server's 16 MiB mutation limit: Cassandra 2.1 answers a
    // WriteTimeout response after its write_request_timeout (2 s).
    const loose = new CassandraTier(
      { ...options, maxValueBytes: 32 * 1024 * 1024 },
      { name: 'loose' },
    );
    await loose.connect();
    try {
      const err: unknown = await loose
        .set(uniqueName('huge'), Buffer.alloc(17 * 1024 * 1024), 60_000)
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ timedOut: true });
      expect((err as Error).message).toMatch(/^cassandra tier "loose": set .*timed out/);
    } finally {
      await loose.close();
    }
  }, 60_000);

  it('a delete Cassandra missed while hung is never served once it answers again, and is replayed there', async () => {
    const clock = new ManualClock();
    const namespace = uniqueName('missed');
    const far = new CassandraTier(
      { ...options, contactPoints: [relay.address], timeout: TIMEOUT },
      { name: 'missed' },
    );
    const store = new TieredStore({ tiers: [{ type: 'memory' }, far], namespace, clock });
    store.on('error', () => undefined);
    // What Cassandra holds, asked without the memory tier (and with a connection of its own).
    const direct = new TieredStore({ tiers: [options], namespace });
    try {
      await store.set('k', 'older');
      expect(await direct.get('k')).toBe('older');
      relay.hang();
      // Cassandra times out on it (its circuit opens); the memory tier drops the key.
      await store.delete('k');
      expect(store.stats()[1].circuit).toBe('open');
      relay.resume();
      clock.advance(11_000);
      // The memory tier no longer has the key, Cassandra still has the older value: not served.
      expect(await store.get('k')).toBeUndefined();
      expect(await store.getMany(['k'])).toEqual([undefined]);
      // Once Cassandra answers a probe, the missed delete is replayed there. (The first
      // requests after a hang may time out once more, and reopen the circuit: a cooldown later,
      // the next probe.)
      const replayed = await eventually(async () => {
        clock.advance(11_000);
        await store.set('other', 1);
        return (await direct.get('k')) === undefined;
      }, 30_000);
      expect(replayed).toBe(true);
    } finally {
      relay.resume();
      await direct.disconnect();
      await store.disconnect();
    }
  });

  it('in a store, a hung Cassandra costs one timeout, then its circuit is open', async () => {
    const store = new TieredStore({
      tiers: [{ type: 'memory' }, hanging],
      namespace: uniqueName('hung'),
    });
    const errors: string[] = [];
    store.on('error', (e: Error) => errors.push(e.message));
    try {
      await store.set('warm', 1);
      relay.hang();
      const started = Date.now();
      // A miss at every tier, then the write of the value found elsewhere.
      expect(await store.get('missing')).toBeUndefined();
      await store.set('missing', 2);
      for (let i = 0; i < 5; i++) expect(await store.get(`other${i}`)).toBeUndefined();
      const elapsed = Date.now() - started;
      expect(elapsed).toBeLessThan(2 * TIMEOUT);
      const stats = store.stats()[1];
      // The requests in flight when the first timeout opened the circuit: this get, and the
      // generation read that the store may have sent beside it; nothing sent after.
      expect(errors.length).toBe(stats.errors);
      expect(errors).toContainEqual(
        expect.stringMatching(/^hung: get "missing" failed: .*timed out/),
      );
      for (const e of errors)
        expect(e).toMatch(/^hung: (get "missing"|generation) failed: .*timed out after 1000 ms/);
      expect(stats.errors).toBeLessThanOrEqual(2);
      expect(stats.circuit).toBe('open');
    } finally {
      relay.resume();
      await store.disconnect();
    }
  });
});

describe('a value no shared tier holds, on the real chain (memory → memcached → Cassandra)', () => {
  it('20 MiB: rejects with ValueTooLargeError at once, five times, stores it nowhere; the next ordinary write reaches Cassandra', async () => {
    const namespace = uniqueName('big');
    const memcached = { type: 'memcached' as const, servers: testServers().memcached };
    const store = new TieredStore({ tiers: [{ type: 'memory' }, memcached, options], namespace });
    // Another instance: what the shared tiers hold.
    const shared = new TieredStore({ tiers: [memcached, options], namespace });
    const errors: Error[] = [];
    store.on('error', (e: Error) => errors.push(e));
    try {
      await store.set('big', 'older');
      // Random bytes: the codec deflates large bodies, and these must stay 20 MiB.
      const big = randomBytes(20 * 1024 * 1024);
      const started = Date.now();
      for (let i = 0; i < 5; i++) {
        const err: unknown = await store.set('big', big).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ValueTooLargeError);
        expect((err as Error).message).toMatch(
          /^set "big": the encoded value is \d+ bytes, more than any shared tier stores \(memcached: 1047552 bytes, cassandra: 16646144 bytes\)/,
        );
      }
      // Nothing was sent to Cassandra: no 2 s server timeout per write.
      expect(Date.now() - started).toBeLessThan(5 * 2000);
      // The older value is gone everywhere, the memory tier included: no process serves it.
      expect(await store.get('big')).toBeUndefined();
      expect(await shared.get('big')).toBeUndefined();
      // Skips, not failures: the circuit stayed closed and the next write reaches Cassandra.
      expect(errors).toEqual([]);
      expect(store.stats().map((s) => s.circuit)).toEqual(['closed', 'closed', 'closed']);
      await store.set('after', 'ordinary');
      const farOnly = new TieredStore({ tiers: [options], namespace });
      try {
        expect(await farOnly.get('after')).toBe('ordinary');
      } finally {
        await farOnly.disconnect();
      }
    } finally {
      await store.disconnect();
      await shared.disconnect();
    }
  }, 120_000);
});
