import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { Client } from 'cassandra-driver';
import { MemcachedError } from '../../lib/errors';
import { Codec } from '../../lib/serialization/codec';
import { CassandraTier } from '../../lib/tiers/cassandra/cassandra.tier';
import { RAISE_ROUNDS, RaiseMerger } from '../../lib/tiers/memcached/cas-raise';
import { MemcachedTier } from '../../lib/tiers/memcached/memcached.tier';
import { Status } from '../../lib/tiers/memcached/protocol';
import { MemoryTier } from '../../lib/tiers/memory/memory.tier';
import { localRecord } from '../../lib/tiers/tier.interface';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import { eventually } from '../support/eventually';
import { buf, MemcachedTestbed, str } from '../support/memcached';
import { TcpRelay } from '../support/tcp-relay';

// `raise`, the max-register that tag invalidation times are written with, beyond the shared
// contract (test/support/tier-contract.ts): how each tier keeps the highest number when writes
// arrive out of order, and what else follows from how it does.

const servers = testServers();
const SET = 0x01;
const ADD = 0x02;

/** `list` in a random order (Fisher-Yates, in place). */
function shuffle<T>(list: T[]): T[] {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
  return list;
}

/** A random integer in [0, below). */
const random = (below: number) => Math.floor(Math.random() * below);

/** A number the size of a tag invalidation time (about 1.8e15), above the write clock's µs. */
const tagSized = () => Date.now() * 1024 + random(1024);

/**
 * A TCP relay in front of one memcached that holds up writes: the requests a client sends are cut
 * out of the byte stream (binary protocol: a 24-byte header, the body's length at byte 8), and
 * each SET or ADD is handed to {@link onWrite} and sent on once that resolves, the requests after
 * it waiting behind it; answers flow back untouched. A held write is a delayed write: sent by the
 * client, reaching the server later, after whatever happened there meanwhile.
 */
class WriteHoldingRelay {
  /** Called with each SET or ADD before it is sent on; undefined: every request passes. */
  onWrite: ((opcode: number) => Promise<void>) | undefined;
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server) {}

  static async start(target: string): Promise<WriteHoldingRelay> {
    const [host, port] = target.split(':');
    const relay: WriteHoldingRelay = new WriteHoldingRelay(
      createServer((client) => {
        const upstream = tcpConnect(Number(port), host);
        for (const s of [client, upstream]) {
          relay.sockets.add(s);
          s.on('close', () => relay.sockets.delete(s));
          s.on('error', () => undefined);
        }
        upstream.pipe(client);
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        let unread = Buffer.alloc(0);
        let queue = Promise.resolve();
        client.on('data', (chunk: Buffer) => {
          unread = Buffer.concat([unread, chunk]);
          while (unread.length >= 24 && unread.length >= 24 + unread.readUInt32BE(8)) {
            const frame = unread.subarray(0, 24 + unread.readUInt32BE(8));
            unread = unread.subarray(frame.length);
            queue = queue.then(async () => {
              const opcode = frame[1];
              if ((opcode === SET || opcode === ADD) && relay.onWrite) await relay.onWrite(opcode);
              upstream.write(frame);
            });
          }
        });
      }),
    );
    await new Promise<void>((resolve) => relay.server.listen(0, '127.0.0.1', resolve));
    return relay;
  }

  get address(): string {
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new Error('relay not listening');
    return `127.0.0.1:${a.port}`;
  }

  /**
   * Holds the next write until the returned `release` is called; `held` resolves once it is
   * held. Writes after it pass.
   */
  holdNext(): { held: Promise<number>; release: () => void } {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const held = new Promise<number>((resolve) => {
      this.onWrite = async (opcode) => {
        this.onWrite = undefined;
        resolve(opcode);
        await gate;
      };
    });
    return { held, release };
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

describe('raise on memcached (3 servers)', () => {
  const bed = new MemcachedTestbed();
  const relays: { close: () => Promise<void> }[] = [];
  let prefix: string;
  const key = (k: string) => `${prefix}:${k}`;

  function tier(list: string[] = servers.memcached, timeout?: number): MemcachedTier {
    return bed.tier(
      new MemcachedTier({ type: 'memcached', servers: list, ...(timeout && { timeout }) }),
    );
  }

  /** A tier reaching the first server through a {@link WriteHoldingRelay}, one reaching it directly. */
  async function heldAndDirect() {
    const relay = await WriteHoldingRelay.start(servers.memcached[0]);
    relays.push(relay);
    // Writes are held up to a few hundred ms: well within the timeout.
    return { relay, held: tier([relay.address], 10_000), direct: tier([servers.memcached[0]]) };
  }

  beforeEach(() => (prefix = uniqueName('raise')));
  afterAll(async () => {
    await Promise.all(relays.map((r) => r.close()));
    await bed.close();
  });

  it('keeps 20 over 10 whatever order they arrive in, on keys spread over every server', async () => {
    const [a, b] = [tier(), tier()];
    expect(a.servers).toHaveLength(3);
    const keys = Array.from({ length: 60 }, (_, i) => key(`k${i}`));
    await Promise.all(
      keys.flatMap((k) => {
        const numbers = shuffle([20, ...Array.from({ length: 9 }, () => (random(2) ? 10 : 20))]);
        return numbers.map((n, i) => [a, b][i % 2].raise(k, n, 60_000));
      }),
    );
    const owners = new Set<string>();
    for (const k of keys) {
      expect(str(await a.get(k))).toBe('20');
      // On the key's owner, and there only.
      for (const server of servers.memcached)
        expect(await bed.raw.get(server, k)).toBe(server === a.serverFor(k) ? '20' : undefined);
      owners.add(a.serverFor(k));
    }
    expect(owners.size).toBe(3);
    // One after the other, the lower one second.
    await a.raise(key('direct'), 30, 0);
    await b.raise(key('direct'), 20, 0);
    expect(str(await a.get(key('direct')))).toBe('30');
  });

  it('what it stores is read by the codec as the number; a value that is not one is replaced', async () => {
    const t = tier();
    const n = tagSized();
    await t.raise(key('tag'), n, 0);
    expect(new Codec().decode((await t.get(key('tag')))!).value).toBe(n);
    await t.set(key('text'), buf('not a number'), 0);
    await t.raise(key('text'), 5, 0);
    expect(str(await t.get(key('text')))).toBe('5');
    await t.set(key('codec'), new Codec().encode([n + 1, 7], 0), 0);
    await t.raise(key('codec'), 6, 0);
    expect(str(await t.get(key('codec')))).toBe('6');
    // A counter is a number like any other.
    expect(await t.increment(key('counter'), 40, 0)).toBe(40);
    await t.raise(key('counter'), 30, 0);
    expect(str(await t.get(key('counter')))).toBe('40');
    await t.raise(key('counter'), 41, 0);
    expect(await t.increment(key('counter'), 1, 0)).toBe(42);
  });

  it('a write held up on the way lands after a higher one and changes nothing (a plain set would)', async () => {
    const { relay, held, direct } = await heldAndDirect();
    await held.connect();

    // The race raise fixes: a set of 10 held up lands after the set of 20.
    let hold = relay.holdNext();
    const setting = held.set(key('set'), buf('10'), 0);
    expect(await hold.held).toBe(SET);
    await direct.set(key('set'), buf('20'), 0);
    hold.release();
    await setting;
    expect(str(await direct.get(key('set')))).toBe('10');

    // Absent key: the ADD of 10 is held, 20 is stored meanwhile; the ADD finds it and stops.
    hold = relay.holdNext();
    let raising = held.raise(key('absent'), 10, 0);
    expect(await hold.held).toBe(ADD);
    await direct.raise(key('absent'), 20, 0);
    hold.release();
    await raising;
    expect(str(await direct.get(key('absent')))).toBe('20');

    // 5 stored: the SET of 10 (carrying the CAS of its GET of 5) is held, 20 is stored meanwhile.
    await direct.raise(key('lower'), 5, 0);
    hold = relay.holdNext();
    raising = held.raise(key('lower'), 10, 0);
    expect(await hold.held).toBe(SET);
    await direct.raise(key('lower'), 20, 0);
    hold.release();
    await raising;
    expect(str(await direct.get(key('lower')))).toBe('20');

    // The held one is the higher: it loses its round, reads 20 and stores 30 in the next.
    await direct.raise(key('higher'), 5, 0);
    hold = relay.holdNext();
    raising = held.raise(key('higher'), 30, 0);
    expect(await hold.held).toBe(SET);
    await direct.raise(key('higher'), 20, 0);
    hold.release();
    await raising;
    expect(str(await direct.get(key('higher')))).toBe('30');
  });

  it(`gives up with a clear error after ${RAISE_ROUNDS} rounds lost to other writers`, async () => {
    const { relay, held, direct } = await heldAndDirect();
    const k = key('contended');
    let writes = 0;
    // Before each of its writes reaches the server, another client changes the item.
    relay.onWrite = async () => void (await direct.set(k, buf(String(writes++)), 0));
    const error = await held.raise(k, 1_000_000, 0).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MemcachedError);
    expect(error).toMatchObject({ kind: 'server', status: Status.KeyExists });
    expect((error as Error).message).toMatch(
      new RegExp(`raise of .* to 1000000 gave up: the item changed under each of ${RAISE_ROUNDS}`),
    );
    expect(writes).toBe(RAISE_ROUNDS);
    // An answer, not a failure of the server: it stays on the ring, and the next raise works.
    expect(held.failedServers).toEqual([]);
    relay.onWrite = undefined;
    await held.raise(k, 1_000_000, 0);
    expect(str(await direct.get(k))).toBe('1000000');
  });

  it('4 instances, 200 concurrent raises of random numbers on one key: the maximum', async () => {
    const instances = [tier(), tier(), tier(), tier()];
    for (let run = 0; run < 3; run++) {
      const k = key(`many:${run}`);
      const numbers = Array.from({ length: 200 }, () => tagSized() + random(1e6));
      await Promise.all(numbers.map((n, i) => instances[i % 4].raise(k, n, 60_000)));
      for (const t of instances) expect(str(await t.get(k))).toBe(String(Math.max(...numbers)));
    }
  });

  it('raises of one key from one instance are merged: 200 in ascending order cost two', async () => {
    const t = tier();
    await t.connect();
    const k = key('ascending');
    const before = t.writesPerServer()[t.serverFor(k)];
    await Promise.all(Array.from({ length: 200 }, (_, i) => t.raise(k, i + 1, 0)));
    // The raise of 1 (GET, ADD), then that of 200 (GET, SET): the others joined them.
    expect(t.writesPerServer()[t.serverFor(k)] - before).toBe(4);
    expect(str(await t.get(k))).toBe('200');
  });

  it('raisers on 30 instances issued in ascending order all settle on the highest', async () => {
    // Each on its own connection; a round is lost to each lower one that wins first.
    const instances = Array.from({ length: 30 }, () => tier());
    await Promise.all(instances.map((t) => t.connect()));
    const k = key('instances');
    await Promise.all(instances.map((t, i) => t.raise(k, i + 1, 0)));
    expect(str(await instances[0].get(k))).toBe('30');
  });

  it('each write sets the expiry', async () => {
    const t = tier();
    await t.raise(key('gone'), 10, 1000);
    await t.raise(key('k'), 10, 1000);
    await t.raise(key('k'), 20, 0); // stored: no expiry now
    expect(await eventually(async () => (await t.get(key('gone'))) === undefined, 5000)).toBe(true);
    // memcached counts expiry in whole seconds: past any second `k` could have expired in.
    await new Promise((r) => setTimeout(r, 1100));
    expect(str(await t.get(key('k')))).toBe('20');
  });

  it('fails over like set: the key goes to its next owner when its own is unreachable', async () => {
    const relay = await TcpRelay.start(servers.memcached[0]);
    relays.push(relay);
    const t = tier([relay.address, ...servers.memcached.slice(1)]);
    await t.connect();
    let k = key('0');
    for (let i = 1; t.serverFor(k) !== relay.address; i++) k = key(String(i));
    relay.drop();
    await t.raise(k, 7, 60_000);
    expect(t.failedServers).toEqual([relay.address]);
    expect(t.serverFor(k)).not.toBe(relay.address);
    expect(await bed.raw.get(t.serverFor(k), k)).toBe('7');
  });
});

describe("RaiseMerger (the memcached tier's merging of one key's concurrent raises)", () => {
  /** A merger whose raises wait until released, recording what was sent. */
  function merger() {
    const sent: [string, number, number][] = [];
    const pending: { resolve: () => void; reject: (e: Error) => void }[] = [];
    const m = new RaiseMerger(
      (key, n, ttlMs) =>
        new Promise<void>((resolve, reject) => {
          sent.push([key, n, ttlMs]);
          pending.push({ resolve, reject });
        }),
    );
    return { m, sent, pending };
  }
  const tick = () => new Promise((r) => setImmediate(r));

  it('joins lower raises to the one in flight and sends the highest of the higher ones next', async () => {
    const { m, sent, pending } = merger();
    const settled: number[] = [];
    const call = (n: number, ttl = 0) => m.raise('k', n, ttl).then(() => settled.push(n));
    void call(10);
    void call(5);
    void call(10);
    void call(12, 1000);
    void call(20, 2000);
    void call(15, 3000);
    void m.raise('other', 1, 0);
    expect(sent).toEqual([
      ['k', 10, 0],
      ['other', 1, 0],
    ]);
    pending[0].resolve();
    await tick();
    expect(settled.sort()).toEqual([10, 10, 5].sort());
    // The highest that came meanwhile, with its TTL.
    expect(sent[2]).toEqual(['k', 20, 2000]);
    void call(18); // joins the raise of 20
    void call(25); // follows it
    pending[2].resolve();
    await tick();
    expect(settled.sort()).toEqual([5, 10, 10, 12, 15, 18, 20].sort());
    expect(sent[3]).toEqual(['k', 25, 0]);
    pending[3].resolve();
    await tick();
    expect(settled).toContain(25);
    // Nothing in flight: the next raise is sent at once.
    void call(1);
    expect(sent[4]).toEqual(['k', 1, 0]);
  });

  it('calls that joined a failed raise reject with its error; the one after is still sent', async () => {
    const { m, sent, pending } = merger();
    const first = m.raise('k', 10, 0);
    const joined = m.raise('k', 7, 0);
    const after = m.raise('k', 11, 0);
    const failure = new Error('server gone');
    pending[0].reject(failure);
    await expect(first).rejects.toBe(failure);
    await expect(joined).rejects.toBe(failure);
    await tick();
    expect(sent[1]).toEqual(['k', 11, 0]);
    pending[1].resolve();
    await expect(after).resolves.toBeUndefined();
  });
});

describe('raise on Cassandra', () => {
  const keyspace = uniqueName('tier_raise').toLowerCase();
  const options = {
    type: 'cassandra' as const,
    ...servers.cassandra,
    keyspace,
    // DDL on a cold single node can take a few seconds.
    timeout: 10_000,
  };
  const raw = new Client(servers.cassandra);
  const tiers: CassandraTier[] = [];
  let tier: CassandraTier;
  let prefix: string;
  const key = (k: string) => `${prefix}:${k}`;

  /** The cell `raise` wrote: its value as text, write timestamp and TTL (null: none). */
  async function cell(k: string) {
    const rs = await raw.execute(
      `SELECT v, WRITETIME(v) AS at, TTL(v) AS ttl FROM "${keyspace}"."${tier.table}" WHERE k = ?`,
      [k],
      { prepare: true },
    );
    const row = rs.first();
    if (!row) return undefined;
    return {
      v: (row.get('v') as Buffer).toString(),
      at: Number(row.get('at')),
      ttl: row.get('ttl') as number | null,
    };
  }

  dropKeyspaceAfterAll(keyspace);

  beforeAll(async () => {
    for (let i = 0; i < 4; i++) tiers.push(new CassandraTier(options, { name: `cassandra[${i}]` }));
    for (const t of tiers) await t.connect();
    tier = tiers[0];
    await raw.connect();
  });

  afterAll(async () => {
    await Promise.all(tiers.map((t) => t.close()));
    await raw.shutdown();
  });

  beforeEach(() => (prefix = uniqueName('raise')));

  it('writes n with the write timestamp n: a lower one arriving later does not win', async () => {
    await tier.raise(key('k'), 20, 0);
    await tier.raise(key('k'), 10, 0);
    expect(await cell(key('k'))).toEqual({ v: '20', at: 20, ttl: null });
    // A write replayed late (a hint, a retry) with its lower timestamp: ignored too.
    await raw.execute(
      `INSERT INTO "${keyspace}"."${tier.table}" (k, v) VALUES (?, ?) USING TIMESTAMP 10`,
      [key('k'), Buffer.from('10')],
      { prepare: true },
    );
    expect((await tier.get(key('k')))?.toString()).toBe('20');
    // The codec reads it as the number.
    const n = tagSized();
    await tiers[1].raise(key('tag'), n, 0);
    expect(new Codec().decode((await tier.get(key('tag')))!).value).toBe(n);
    expect((await cell(key('tag')))?.at).toBe(n);
  });

  it('4 instances, 200 concurrent raises of random numbers on one key: the maximum', async () => {
    for (let run = 0; run < 3; run++) {
      const k = key(`many:${run}`);
      const numbers = Array.from({ length: 200 }, () => tagSized() + random(1e6));
      await Promise.all(numbers.map((n, i) => tiers[i % 4].raise(k, n, 60_000)));
      const max = Math.max(...numbers);
      for (const t of tiers) expect((await t.get(k))?.toString()).toBe(String(max));
      expect((await cell(k))?.at).toBe(max);
    }
  });

  it('TTL: set by the raise that wins, left alone by one that does not', async () => {
    await tier.raise(key('k'), 10, 60_000);
    await tier.raise(key('k'), 5, 0); // loses: the TTL stays
    let c = await cell(key('k'));
    expect(c?.v).toBe('10');
    expect(c?.ttl).toBeGreaterThan(50);
    expect(c?.ttl).toBeLessThanOrEqual(60);
    await tier.raise(key('k'), 11, 0); // wins: no TTL now
    c = await cell(key('k'));
    expect(c).toEqual({ v: '11', at: 11, ttl: null });
  });

  it('an expired number still outranks lower ones until its tombstone is purged', async () => {
    await tier.raise(key('k'), 10, 1000);
    expect(await eventually(async () => (await tier.get(key('k'))) === undefined, 5000)).toBe(true);
    await tier.raise(key('k'), 5, 0);
    expect(await tier.get(key('k'))).toBeUndefined();
    await tier.raise(key('k'), 11, 0);
    expect((await tier.get(key('k')))?.toString()).toBe('11');
  });

  it('keys written by raise must be written by nothing else: set and delete compete by timestamp', async () => {
    // A tag-sized number is above the write clock's microseconds: a later delete or set is lost.
    const n = tagSized();
    await tier.raise(key('tag'), n, 0);
    await tier.delete(key('tag'));
    await tier.set(key('tag'), Buffer.from('set'), 0);
    expect((await tier.get(key('tag')))?.toString()).toBe(String(n));
    // A small number is below them: a raise after a delete is lost to its tombstone.
    await tier.raise(key('small'), 5, 0);
    await tier.delete(key('small'));
    await tier.raise(key('small'), 6, 0);
    expect(await tier.get(key('small'))).toBeUndefined();
  });
});

describe('raise on the memory tier', () => {
  it('holds localRecord(n), replaces what is not a number, and each write sets the TTL', async () => {
    const t = new MemoryTier();
    await t.raise('k', 5, 0);
    expect(t.peek('k')).toEqual(localRecord(5));
    await t.raise('k', 3, 0);
    expect(t.peek('k')?.value).toBe(5);
    t.put('text', localRecord('not a number'), 0);
    await t.raise('text', 2, 0);
    expect(t.peek('text')?.value).toBe(2);
    // The same number as a counter: increment and raise share it.
    expect(await t.increment('ctr', 7, 0)).toBe(7);
    await t.raise('ctr', 6, 0);
    expect(await t.increment('ctr', 1, 0)).toBe(8);
    await t.raise('ttl', 1, 20);
    await t.raise('ttl', 2, 0);
    await new Promise((r) => setTimeout(r, 40));
    expect(t.peek('ttl')?.value).toBe(2);
    await t.close();
  });
});
