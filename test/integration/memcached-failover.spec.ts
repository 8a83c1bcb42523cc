import { KeyBuilder, TieredStore } from '../../lib';
import type { MemcachedTierOptions } from '../../lib/tiers/memcached/memcached.options';
import { MemcachedTier } from '../../lib/tiers/memcached/memcached.tier';
import { testServers, uniqueName } from '../harness/env';
import { ElastiCacheEndpoint } from '../support/elasticache-endpoint';
import { eventually } from '../support/eventually';
import { ManualClock } from '../support/manual-clock';
import { buf, discoveredChain, freeze, MemcachedTestbed, pidOf, str } from '../support/memcached';

const servers = testServers();
const SERVERS = servers.memcached;
const FAILOVER = 30_000;

const bed = new MemcachedTestbed();

/**
 * A tier of its own. Its timeout (unless a test sets one) is generous: a dead node is refused at
 * once, and a busy machine can take longer than the default 500 ms to connect to a live one.
 */
function tier(options: Partial<MemcachedTierOptions>, clock?: ManualClock): MemcachedTier {
  return bed.tier(new MemcachedTier({ type: 'memcached', timeout: 3000, ...options }, { clock }));
}

afterAll(() => bed.close());

describe('memcached failover (real processes, SIGKILL)', () => {
  it('a node that dies leaves the ring: its keys go to the next owner, callers see no error', async () => {
    const node = await bed.node();
    const clock = new ManualClock();
    const all = [...SERVERS, node.address];
    const t = tier({ servers: all, failoverTime: FAILOVER, retries: 1 }, clock);
    const p = uniqueName('dies');
    const keys = Array.from({ length: 200 }, (_, i) => `${p}:${i}`);
    await t.setMany(keys.map((key) => ({ key, value: buf(key), ttlMs: 60_000 })));
    const owner = new Map(keys.map((k) => [k, t.serverFor(k)]));
    const onNode = keys.filter((k) => owner.get(k) === node.address);
    const elsewhere = keys.filter((k) => owner.get(k) !== node.address);
    expect(onNode.length).toBeGreaterThan(10);

    await node.stop('SIGKILL');
    // Working → failed → off the ring, inside one call: retried on the key's next owner (a miss).
    await expect(t.get(onNode[0])).resolves.toBeUndefined();
    expect(t.failedServers).toEqual([node.address]);
    expect(t.servers).toEqual(SERVERS);
    // Only the dead node's keys moved.
    expect(elsewhere.every((k) => t.serverFor(k) === owner.get(k))).toBe(true);
    expect(onNode.every((k) => t.serverFor(k) !== node.address)).toBe(true);

    // Every operation keeps working; writes of its keys land on the new owners.
    await t.set(onNode[1], buf('moved'), 60_000);
    expect(await bed.raw.get(t.serverFor(onNode[1]), onNode[1])).toBe('moved');
    expect(await t.add(onNode[2], buf('added'), 60_000)).toBe(true);
    // Resolved (no error) on the new owner, which never held the key.
    await expect(t.delete(onNode[3])).resolves.toBe(false);
    const values = await t.getMany(keys);
    keys.forEach((k, i) => {
      const expected = k === onNode[1] ? 'moved' : k === onNode[2] ? 'added' : undefined;
      expect(str(values[i])).toBe(owner.get(k) === node.address ? expected : k);
    });
    // No further request went to the dead node.
    const writes = t.writesPerServer()[node.address];
    await Promise.all(onNode.map((k) => t.get(k)));
    expect(t.writesPerServer()[node.address]).toBe(writes);
  });

  it('getMany and every write fail over too, each alone on a fresh tier', async () => {
    const node = await bed.node();
    const p = uniqueName('ops');
    const keys = Array.from({ length: 100 }, (_, i) => `${p}:${i}`);
    const seed = tier({ servers: [...SERVERS, node.address] });
    await seed.setMany(keys.map((key) => ({ key, value: buf(key), ttlMs: 60_000 })));
    const onNode = keys.filter((k) => seed.serverFor(k) === node.address);
    await node.stop('SIGKILL');
    const ops: Array<[string, (t: MemcachedTier) => Promise<unknown>]> = [
      ['getMany', (t) => t.getMany(keys)],
      ['set', (t) => t.set(onNode[0], buf('x'), 60_000)],
      ['setMany', (t) => t.setMany(onNode.map((key) => ({ key, value: buf('y'), ttlMs: 60_000 })))],
      ['add', (t) => t.add(onNode[1], buf('x'), 60_000)],
      ['delete', (t) => t.delete(onNode[2])],
      ['deleteMany', (t) => t.deleteMany(onNode)],
    ];
    for (const [name, op] of ops) {
      const t = tier({ servers: [...SERVERS, node.address] });
      await expect(op(t).then(() => name)).resolves.toBe(name);
      expect(t.failedServers).toEqual([node.address]);
    }
  });

  it('after failoverTime the failed node is probed and rejoins the ring when it answers', async () => {
    const node = await bed.node();
    const clock = new ManualClock();
    const t = tier({ servers: [...SERVERS, node.address], failoverTime: FAILOVER }, clock);
    const p = uniqueName('probe');
    const keys = Array.from({ length: 100 }, (_, i) => `${p}:${i}`);
    const onNode = keys.filter((k) => t.serverFor(k) === node.address);
    await node.stop('SIGKILL');
    await t.get(onNode[0]);
    expect(t.failedServers).toEqual([node.address]);

    // Still down when failoverTime has passed: the probe fails, it stays out another failoverTime.
    clock.advance(FAILOVER - 1);
    let writes = t.writesPerServer()[node.address];
    await t.probeFailedServers();
    expect(t.writesPerServer()[node.address]).toBe(writes); // not due: no probe sent
    clock.advance(1);
    await t.probeFailedServers();
    expect(t.writesPerServer()[node.address]).toBe(writes + 1); // one NOOP
    expect(t.failedServers).toEqual([node.address]);

    // Back (empty, as a restarted memcached is): the next request after failoverTime probes it
    // in the background, and it takes its keys back.
    await node.start();
    clock.advance(FAILOVER - 1);
    writes = t.writesPerServer()[node.address];
    await t.get(keys[0]);
    await t.probeFailedServers();
    expect(t.writesPerServer()[node.address]).toBe(writes);
    expect(t.failedServers).toEqual([node.address]);
    clock.advance(1);
    await t.get(keys[0]); // triggers the probe
    expect(await eventually(() => t.failedServers.length === 0, 2000)).toBe(true);
    expect(t.servers).toEqual([...SERVERS, node.address]);
    expect(t.serverFor(onNode[0])).toBe(node.address);
    await t.set(onNode[0], buf('home again'), 60_000);
    expect(await bed.raw.get(node.address, onNode[0])).toBe('home again');
  });

  it('increment is never retried; a timeout ejects the node; failoverTime: 0 keeps it', async () => {
    const node = await bed.node();
    const p = uniqueName('policy');
    const keys = Array.from({ length: 100 }, (_, i) => `${p}:${i}`);
    const t = tier({ servers: [...SERVERS, node.address] });
    const onNode = keys.filter((k) => t.serverFor(k) === node.address);
    await t.connect();

    // SIGSTOP: a hung node times out once, leaves the ring, and the retry goes to the key's next
    // owner (a miss, no error).
    const hung = tier({ servers: [...SERVERS, node.address], timeout: 200 });
    await hung.connect();
    await freeze(pidOf(node));
    try {
      const before = hung.writesPerServer()[node.address];
      await expect(hung.get(onNode[0])).resolves.toBeUndefined();
      expect(hung.writesPerServer()[node.address] - before).toBe(1);
      expect(hung.failedServers).toEqual([node.address]);
      // failoverTime: 0, the node stays on the ring: the error says only this node failed.
      const kept = tier({ servers: [...SERVERS, node.address], timeout: 200, failoverTime: 0 });
      await kept.connect();
      const error = await kept.get(onNode[0]).catch((e: unknown) => e);
      expect(error).toMatchObject({ timedOut: true, partial: true });
      expect(kept.failedServers).toEqual([]);
    } finally {
      process.kill(pidOf(node), 'SIGCONT');
    }

    await node.stop('SIGKILL');
    const before = t.writesPerServer()[node.address];
    await expect(t.increment(onNode[0], 1, 60_000)).rejects.toThrow(node.address);
    expect(t.writesPerServer()[node.address] - before).toBe(1); // sent once, not retried
    expect(t.failedServers).toEqual([node.address]);
    // The next increment goes to the key's new owner.
    expect(await t.increment(onNode[0], 5, 60_000)).toBe(5);

    const off = tier({ servers: [...SERVERS, node.address], failoverTime: 0 });
    await expect(off.get(onNode[0])).rejects.toThrow(node.address);
    await expect(off.get(onNode[0])).rejects.toThrow(node.address);
    expect(off.failedServers).toEqual([]);
    expect(off.servers).toEqual([...SERVERS, node.address]);
  });

  it('every node down: the tier keeps trying all of them and works again when one returns', async () => {
    const node = await bed.node();
    const t = tier({ servers: [node.address], timeout: 300 });
    await node.stop('SIGKILL');
    await expect(t.get('k')).rejects.toThrow(node.address);
    expect(t.failedServers).toEqual([node.address]);
    expect(t.servers).toEqual([node.address]); // nothing else to put its keys on
    await node.start();
    await t.set('k', buf('back'), 60_000);
    expect(str(await t.get('k'))).toBe('back');
  });

  it('kill one of 3 nodes under load: no caller error, its keys served by Cassandra and rewarmed', async () => {
    const own = [await bed.node(), await bed.node(), await bed.node()];
    const victim = own[1];
    const e = await ElastiCacheEndpoint.start({ servers: own.map((n) => n.address) });
    bed.endpoint(e);
    const discovery = { endpoint: e.address, intervalMs: 200 };
    const namespace = uniqueName('kill');
    const { chain, errors } = await discoveredChain(discovery, namespace);
    bed.store(chain);

    const N = 600;
    const keys = Array.from({ length: N }, (_, i) => `k${i}`);
    const value = (k: string) => `value of ${k}`;
    for (let i = 0; i < N; i += 200) {
      await chain.setMany(keys.slice(i, i + 200).map((k) => ({ key: k, value: value(k) })));
    }
    const finals = new KeyBuilder({ namespace });
    const observer = tier({ discovery });
    await observer.connect();
    const onVictim = keys.filter((k) => observer.serverFor(finals.build(k)) === victim.address);
    expect(onVictim.length).toBeGreaterThan(N / 10);

    // 8 readers, each walking all keys in its own order, until each did a full pass after the kill.
    let killed = false;
    let reads = 0;
    let rejected = 0;
    const wrong: string[] = [];
    const passesAfterKill = new Array<number>(8).fill(0);
    const readers = Array.from({ length: 8 }, async (_, r) => {
      for (let pass = 0; passesAfterKill[r] < 1; pass++) {
        const startedAfterKill = killed;
        for (let i = 0; i < N; i++) {
          const k = keys[(i * 7 + r * 75) % N];
          try {
            const v = await chain.get(k);
            reads++;
            if (v !== value(k)) wrong.push(`${k}: ${String(v)}`);
          } catch {
            rejected++;
          }
        }
        if (startedAfterKill) passesAfterKill[r]++;
      }
    });
    const before = chain.stats();
    await eventually(() => reads > 1500, 20_000);
    const readsAtKill = reads;
    await victim.stop('SIGKILL');
    killed = true;
    await Promise.all(readers);
    const after = chain.stats();
    process.stdout.write(
      `kill 1 of 3 under load: ${reads} reads (${reads - readsAtKill} after the kill), ` +
        `${rejected} rejected, ${wrong.length} wrong, ${errors.length} tier errors, ` +
        `${after[1].hits - before[1].hits} served by Cassandra\n`,
    );
    expect(rejected).toBe(0);
    expect(wrong).toEqual([]);
    expect(errors).toEqual([]); // the memcached tier itself never failed a call
    expect(after[0].circuit).toBe('closed');
    // The victim's keys missed memcached and came from Cassandra (each at least once).
    expect(after[1].hits - before[1].hits).toBeGreaterThanOrEqual(onVictim.length);

    // Rewarmed on the survivors: memcached alone now serves every key.
    await chain.disconnect();
    const nearOnly = new TieredStore({ namespace, tiers: [{ type: 'memcached', discovery }] });
    bed.store(nearOnly);
    await nearOnly.connect({ failFast: true });
    const values = await nearOnly.getMany(keys);
    expect(values.filter((v, i) => v !== value(keys[i]))).toEqual([]);
    await observer.connect(); // its ping to the dead node takes that node off its ring too
    expect(observer.failedServers).toEqual([victim.address]);
    const survivor = await bed.raw.get(
      observer.serverFor(finals.build(onVictim[0])),
      finals.build(onVictim[0]),
    );
    expect(survivor).toBeDefined();
  });
});
