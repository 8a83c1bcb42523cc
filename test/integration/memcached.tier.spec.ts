import { Socket } from 'node:net';
import { jest } from '@jest/globals';
import { parseHostPort } from '../../lib/tiers/host-port';
import type { MemcachedTierOptions } from '../../lib/tiers/memcached/memcached.options';
import { MemcachedTier } from '../../lib/tiers/memcached/memcached.tier';
import { PATIENT_TIMEOUT_MS, testServers, uniqueName } from '../harness/env';
import { freePort } from '../harness/ports';
import { eventually } from '../support/eventually';
import { buf, freeze, MemcachedTestbed, pidOf, str } from '../support/memcached';

const SERVERS = testServers().memcached;
const GETKQ = 0x0d;
const NOOP = 0x0a;

const bed = new MemcachedTestbed();

function tier(options: Partial<MemcachedTierOptions> = {}, name?: string): MemcachedTier {
  return bed.tier(new MemcachedTier({ type: 'memcached', servers: SERVERS, ...options }, { name }));
}

function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
}

afterAll(() => bed.close());

describe('MemcachedTier on real memcached', () => {
  it('uses the 3 test servers', () => {
    expect(SERVERS).toHaveLength(3);
    expect(tier().kind).toBe('memcached');
  });

  it('spreads keys over all 3 servers, each key on the server the ring names', async () => {
    const t = tier();
    const p = uniqueName('spread');
    const keys = Array.from({ length: 90 }, (_, i) => `${p}:${i}`);
    await Promise.all(keys.map((k) => t.set(k, buf(k), 60_000)));

    const perServer = new Map<string, number>();
    for (const key of keys) {
      const holders: string[] = [];
      for (const server of SERVERS) {
        if ((await bed.raw.get(server, key)) === key) holders.push(server);
      }
      expect(holders).toEqual([t.serverFor(key)]);
      perServer.set(holders[0], (perServer.get(holders[0]) ?? 0) + 1);
    }
    expect([...perServer.keys()].sort()).toEqual([...SERVERS].sort());
    for (const count of perServer.values()) expect(count).toBeGreaterThanOrEqual(10);
  });

  it('getMany is pipelined: one socket write per server, holding every GETKQ and one NOOP', async () => {
    const t = tier();
    await t.connect(); // sockets open, so only the batch itself is written below
    const p = uniqueName('pipeline');
    const keys = Array.from({ length: 300 }, (_, i) => `${p}:${i}`);
    await t.setMany(keys.map((key) => ({ key, value: buf(key), ttlMs: 60_000 })));

    const ports = new Map(SERVERS.map((s) => [(parseHostPort(s) as { port: number }).port, s]));
    const writes: { server: string; opcodes: number[] }[] = [];
    const write = Socket.prototype.write;
    const spy = jest.spyOn(Socket.prototype, 'write');
    spy.mockImplementation(function (this: Socket, ...args: Parameters<Socket['write']>) {
      const server = ports.get(this.remotePort ?? -1);
      const data = args[0];
      if (server && Buffer.isBuffer(data)) {
        const opcodes: number[] = [];
        for (let at = 0; at + 24 <= data.length; at += 24 + data.readUInt32BE(at + 8)) {
          opcodes.push(data[at + 1]);
        }
        writes.push({ server, opcodes });
      }
      return write.apply(this, args);
    });
    let values: (Buffer | undefined)[];
    try {
      values = await t.getMany(keys);
    } finally {
      spy.mockRestore();
    }
    expect(values.map(str)).toEqual(keys);

    expect(writes).toHaveLength(3);
    expect(new Set(writes.map((w) => w.server))).toEqual(new Set(SERVERS));
    for (const w of writes) {
      const owned = keys.filter((k) => t.serverFor(k) === w.server).length;
      expect(w.opcodes).toEqual([...Array<number>(owned).fill(GETKQ), NOOP]);
    }
  });

  it('a 1 s TTL (memcached clock) is readable at once and gone within seconds', async () => {
    const t = tier();
    const k = uniqueName('ttl');
    await t.set(k, buf('short'), 1000);
    expect(str(await t.get(k))).toBe('short');
    const t0 = Date.now();
    expect(await eventually(async () => (await t.get(k)) === undefined, 3000)).toBe(true);
    // memcached's clock ticks once a second: a 1 s item lives between ~0 and ~2 s (the bound
    // leaves room for a busy machine; a TTL sent in ms instead of s would be 1,000 s).
    expect(Date.now() - t0).toBeLessThan(6000);
  });

  it('skips an oversize value and removes the older value (set, setMany, add)', async () => {
    const t = tier({ maxValueBytes: 1000 });
    const p = uniqueName('oversize');
    const big = Buffer.alloc(1001, 1);

    await t.set(`${p}:a`, buf('old'), 60_000);
    await expect(t.set(`${p}:a`, big, 60_000)).resolves.toBeUndefined();
    expect(await t.get(`${p}:a`)).toBeUndefined();
    expect(t.oversizeSkips).toBe(1);

    await t.set(`${p}:b`, buf('old'), 60_000);
    await t.setMany([
      { key: `${p}:b`, value: big, ttlMs: 60_000 },
      { key: `${p}:c`, value: Buffer.alloc(1000, 2), ttlMs: 60_000 },
    ]);
    expect(await t.get(`${p}:b`)).toBeUndefined();
    expect(await t.get(`${p}:c`)).toEqual(Buffer.alloc(1000, 2));
    expect(t.oversizeSkips).toBe(2);

    expect(await t.add(`${p}:d`, big, 60_000)).toBe(false);
    expect(await t.get(`${p}:d`)).toBeUndefined();
    expect(t.oversizeSkips).toBe(3);
  });

  it("treats the server's own item size limit the same way", async () => {
    const t = tier({ maxValueBytes: 4 * 1024 * 1024 });
    const k = uniqueName('e2big');
    await t.set(k, buf('old'), 60_000);
    // memcached's default item limit is 1 MiB.
    await expect(t.set(k, Buffer.alloc(1536 * 1024, 3), 60_000)).resolves.toBeUndefined();
    expect(await t.get(k)).toBeUndefined();
    expect(t.oversizeSkips).toBe(1);
    // The connection is still in sync afterwards.
    await t.set(k, buf('small'), 60_000);
    expect(str(await t.get(k))).toBe('small');
  });

  it('1,000 concurrent increments from two instances each get a distinct result; the server holds 1000', async () => {
    const a = tier({ timeout: PATIENT_TIMEOUT_MS }, 'memcached[a]');
    const b = tier({ timeout: PATIENT_TIMEOUT_MS }, 'memcached[b]');
    const k = uniqueName('counter');
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => (i % 2 ? a : b).increment(k, 1, 60_000)),
    );
    expect(new Set(results).size).toBe(1000);
    expect(Math.min(...results)).toBe(1);
    expect(
      str(
        await bed.raw
          .client(a.serverFor(k))
          .get(k)
          .then((r) => r.value ?? undefined),
      ),
    ).toBe('1000');
  });

  it('increment rejects a `by` that is not a safe integer, and a non-numeric value', async () => {
    const t = tier();
    const k = uniqueName('decr');
    await expect(t.increment(k, 1.5, 60_000)).rejects.toThrow(RangeError);
    await t.set(`${k}:text`, buf('abc'), 60_000);
    await expect(t.increment(`${k}:text`, 1, 60_000)).rejects.toThrow(/non-numeric/);
  });

  it('setServers adds a node: about 1/4 of keys move to it, the rest stay, nothing fails', async () => {
    const extra = await bed.node();
    // Without warm-up (memcached-warmup.spec.ts has it): a moved key is a miss on its new node.
    const t = tier({ warmup: 0 });
    const p = uniqueName('reshard');
    const keys = Array.from({ length: 400 }, (_, i) => `${p}:${i}`);
    await t.setMany(keys.map((key) => ({ key, value: buf(key), ttlMs: 60_000 })));

    // Requests in flight while the ring changes all complete.
    const inFlight = Promise.all(keys.map((k) => t.get(k)));
    t.setServers([...SERVERS, extra.address]);
    expect((await inFlight).map(str)).toEqual(keys);
    expect(t.servers).toEqual([...SERVERS, extra.address]);

    const moved = keys.filter((k) => t.serverFor(k) === extra.address);
    expect(moved.length / keys.length).toBeGreaterThan(0.1);
    expect(moved.length / keys.length).toBeLessThan(0.4);
    const values = await t.getMany(keys);
    keys.forEach((k, i) => expect(str(values[i])).toBe(moved.includes(k) ? undefined : k));

    // Writes to moved keys land on the new node.
    await t.set(moved[0], buf('new home'), 60_000);
    expect(await bed.raw.get(extra.address, moved[0])).toBe('new home');

    // Removing it while requests to it are in flight: they complete on it, then its socket closes.
    const handles = tcpHandles();
    const draining = Promise.all(moved.slice(0, 20).map((k) => t.get(k)));
    t.setServers(SERVERS);
    expect((await draining).map(str)).toEqual([
      'new home',
      ...Array<undefined>(19).fill(undefined),
    ]);
    expect(await eventually(() => tcpHandles() === handles - 1, 1000)).toBe(true);
    // Its keys are back on their old servers.
    expect(str(await t.get(moved[1]))).toBe(moved[1]);
    expect(() => t.setServers(['nope'])).toThrow(/servers\[0\]: "nope" has no port/);
    expect(t.servers).toEqual(SERVERS);
  });

  it('a dead server fails its keys fast while other keys keep working', async () => {
    const dead = await bed.node();
    const timeout = 300;
    // Failover off: this is the behaviour without it (see memcached-failover.spec.ts for it on).
    const t = tier({ servers: [...SERVERS, dead.address], timeout, failoverTime: 0 });
    const p = uniqueName('dead');
    const keys = Array.from({ length: 200 }, (_, i) => `${p}:${i}`);
    await t.setMany(keys.map((key) => ({ key, value: buf(key), ttlMs: 60_000 })));
    const onDead = keys.filter((k) => t.serverFor(k) === dead.address);
    const alive = keys.filter((k) => t.serverFor(k) !== dead.address);
    expect(onDead.length).toBeGreaterThan(0);

    await dead.stop('SIGKILL');

    const timed = async (op: () => Promise<unknown>) => {
      const t0 = Date.now();
      const outcome = await op().then(
        () => 'resolved',
        (e: Error) => e.message,
      );
      return { outcome, ms: Date.now() - t0 };
    };
    for (const op of [
      () => t.get(onDead[0]),
      () => t.set(onDead[1], buf('x'), 1000),
      () => t.add(onDead[2], buf('x'), 1000),
      () => t.delete(onDead[3]),
      () => t.getMany([alive[0], onDead[0]]),
    ]) {
      const { outcome, ms } = await timed(op);
      expect(outcome).toContain(dead.address);
      expect(ms).toBeLessThan(timeout * 2 + 200); // (1 + retries) attempts at most
    }

    // get is retried once (2 writes), increment never (1 write).
    const before = t.writesPerServer()[dead.address];
    await expect(t.get(onDead[0])).rejects.toThrow(dead.address);
    expect(t.writesPerServer()[dead.address] - before).toBe(2);
    await expect(t.increment(onDead[0], 1, 1000)).rejects.toThrow(dead.address);
    expect(t.writesPerServer()[dead.address] - before).toBe(3);

    // Other keys are unaffected, concurrently with failures on the dead node.
    const [good, bad] = await Promise.all([
      t.getMany(alive),
      Promise.allSettled(onDead.map((k) => t.get(k))),
    ]);
    expect(good.map(str)).toEqual(alive);
    expect(bad.every((r) => r.status === 'rejected')).toBe(true);

    // A restarted (empty) node serves again.
    await dead.start();
    expect(await t.get(onDead[0])).toBeUndefined();
    await t.set(onDead[0], buf('back'), 60_000);
    expect(str(await t.get(onDead[0]))).toBe('back');
  });

  it('failover off: a hung server (SIGSTOP) costs one timeout per attempt, then recovers', async () => {
    // With failover (the default), a timeout takes the server off the ring: the isolation spec.
    const hung = await bed.node();
    const timeout = 300;
    const servers = [...SERVERS, hung.address];
    const once = tier({ servers, timeout, retries: 0, failoverTime: 0 });
    const twice = tier({ servers, timeout, retries: 1, failoverTime: 0 });
    const p = uniqueName('hung');
    const keys = Array.from({ length: 100 }, (_, i) => `${p}:${i}`);
    await once.setMany(keys.map((key) => ({ key, value: buf(key), ttlMs: 60_000 })));
    const onHung = keys.filter((k) => once.serverFor(k) === hung.address);
    const alive = keys.filter((k) => once.serverFor(k) !== hung.address);
    expect(onHung.length).toBeGreaterThan(0);
    await once.connect();
    await twice.connect();

    const pid = pidOf(hung);
    await freeze(pid);
    try {
      const started = Date.now();
      const [a, b, good] = await Promise.all([
        once.get(onHung[0]).then(
          () => 'resolved',
          (e: Error) => ({ message: e.message, ms: Date.now() - started }),
        ),
        twice.get(onHung[0]).then(
          () => 'resolved',
          (e: Error) => ({ message: e.message, ms: Date.now() - started }),
        ),
        once.getMany(alive).then((values) => ({ values, ms: Date.now() - started })),
      ]);
      expect(a).toEqual({
        message: expect.stringContaining('no answer within 300 ms'),
        ms: expect.any(Number),
      });
      expect(b).toEqual({ message: expect.stringContaining(hung.address), ms: expect.any(Number) });
      if (typeof a === 'string' || typeof b === 'string') throw new Error('should have rejected');
      expect(a.ms).toBeGreaterThanOrEqual(timeout - 20);
      expect(a.ms).toBeLessThan(timeout + 250);
      expect(b.ms).toBeGreaterThanOrEqual(2 * timeout - 20); // retried once
      expect(b.ms).toBeLessThan(2 * timeout + 250);
      expect(good.values.map(str)).toEqual(alive);
      expect(good.ms).toBeLessThan(timeout);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect(str(await once.get(onHung[0]))).toBe(onHung[0]);
    expect(str(await twice.get(onHung[0]))).toBe(onHung[0]);
  });

  it('connect() rejects naming the servers when none is reachable, resolves when one is', async () => {
    const down = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
    const none = tier({ servers: down, timeout: 300 });
    const error = await none.connect().then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ code: 'E_UNREACHABLE' });
    expect(error?.message).toMatch(/no memcached server is reachable/);
    for (const address of down) expect(error?.message).toContain(address);

    const some = tier({ servers: [...down, SERVERS[0]], timeout: 300 });
    await expect(some.connect()).resolves.toBeUndefined();
  });

  it('close() lets requests in flight finish, closes every socket, and later calls reject as closed', async () => {
    const t = new MemcachedTier({ type: 'memcached', servers: SERVERS });
    await t.connect();
    const p = uniqueName('close');
    await t.getMany(Array.from({ length: 30 }, (_, i) => `${p}:${i}`));
    const open = tcpHandles();
    const pending = t.get(`${p}:0`);
    await t.close();
    await expect(pending).resolves.toBeUndefined(); // in flight: completed, not cut off
    expect(await eventually(() => tcpHandles() <= open - 3, 1000)).toBe(true);
    await expect(t.get(`${p}:0`)).rejects.toThrow(/closed/);
    await expect(t.getMany([`${p}:0`])).rejects.toThrow(/closed/);
  });
});
