import { randomBytes } from 'node:crypto';
import {
  isLocalTier,
  localRecord,
  type LocalRecord,
  type Tier,
  type TierCapabilities,
} from '../../lib/tiers/tier.interface';
import { uniqueName } from '../harness/env';
import { eventually } from './eventually';
import type { ManualClock } from './manual-clock';

export interface TierContractTarget {
  /** A new, unconnected tier; every instance made by one target shares its backend. */
  create: () => Tier<unknown>;
  /**
   * The payload a tier holds for a string: a `Buffer` for remote tiers, `localRecord(s)` (from
   * tier.interface.ts) for a local one. Two calls with the same string must be equal payloads.
   */
  holder: (s: string) => unknown;
  /**
   * The clock the target's tiers measure TTLs on, when they take one: expiry is then tested by
   * advancing it. Without one, short real TTLs are used and awaited by polling.
   */
  clock?: ManualClock;
  /** What the capabilities must say, beyond being well formed (e.g. `{ leases: 'atomic' }`). */
  capabilities?: Partial<TierCapabilities>;
  /** A built-in tier: its keys may be at least 250 bytes long. Default true. */
  builtIn?: boolean;
  /**
   * Counters go below zero (Cassandra's counter table) instead of being created at `max(by, 0)`
   * and floored at 0 (memcached, the memory tier). Default false.
   */
  signedCounters?: boolean;
  /** Real clocks only: how long past its TTL an entry may take to disappear. Default 5000 ms. */
  expirySlackMs?: number;
  /**
   * The payload `get` answers after `raise(key, n)`. Default: `localRecord(n)` for a local tier,
   * else `holder(String(n))`, the ASCII digits of `n`.
   */
  raised?: (n: number) => unknown;
}

/**
 * One conformance suite of the {@link Tier} interface (as bentocache's
 * registerCacheDriverTestSuite is for its drivers): every built-in tier and any tier of your own
 * must pass it. Cases of optional methods run when the tier has them (and must, when its
 * capabilities promise them). Keys are unique per test, so runs against shared servers never see
 * each other.
 */
export function describeTierContract(name: string, target: TierContractTarget): void {
  describe(`tier contract: ${name}`, () => {
    // Built here (no connection yet) so that the cases can follow what the tier can do.
    const tier = target.create();
    const caps = tier.capabilities;
    const local = caps.local;
    const hasAdd = typeof tier.add === 'function';
    const hasDeleteIf = typeof tier.deleteIf === 'function';
    const hasIncrement = typeof tier.increment === 'function';
    const hasRaise = typeof tier.raise === 'function';
    /** A second instance on the same backend (the same tier, for a process-private one). */
    let other: Tier<unknown> = tier;
    const opened: Tier<unknown>[] = [tier];
    const h = target.holder;
    const raised = target.raised ?? ((n: number) => (local ? localRecord(n) : h(String(n))));
    let prefix: string;
    const key = (k: string) => `${prefix}:${k}`;

    /** Lets time pass: the manual clock jumps; a real clock is simply waited on, by the caller. */
    async function advance(ms: number): Promise<void> {
      target.clock!.advance(ms);
      // lru-cache keeps its clock reading for 1 ms of real time (its ttlResolution): let it go.
      await new Promise((r) => setTimeout(r, 5));
    }

    /** Waits until `k` is gone: past `ttlMs` on the manual clock, or by polling a real one. */
    async function expectExpiry(keys: string[], ttlMs: number): Promise<void> {
      if (target.clock) {
        await advance(ttlMs - 1);
        for (const k of keys) expect(await tier.get(k)).toBeDefined();
        await advance(2);
        for (const k of keys) expect(await tier.get(k)).toBeUndefined();
        return;
      }
      const bound = ttlMs + caps.ttlResolutionMs + (target.expirySlackMs ?? 5000);
      const gone = async () => (await tier.getMany(keys)).every((v) => v === undefined);
      expect(await eventually(gone, bound)).toBe(true);
    }

    /** A TTL short enough to wait for, long enough to read right after writing (>= 1 unit). */
    const shortTtl = target.clock ? 1000 : Math.max(2 * caps.ttlResolutionMs, 1000);

    beforeAll(async () => {
      await tier.connect();
      if (!local) {
        other = target.create();
        opened.push(other);
        await other.connect();
      }
    });

    afterAll(async () => {
      await Promise.all(opened.map((t) => t.close()));
    });

    beforeEach(() => {
      prefix = uniqueName('contract');
    });

    it('has well-formed capabilities, a name and a kind', () => {
      expect(typeof tier.name).toBe('string');
      expect(tier.name).not.toBe('');
      expect(typeof tier.kind).toBe('string');
      expect(tier.kind).not.toBe('');
      expect(typeof caps.local).toBe('boolean');
      expect([false, 'atomic', 'consensus']).toContain(caps.leases);
      expect([false, 'atomic', 'additive']).toContain(caps.counters);
      if (caps.maxValueBytes !== undefined) expect(caps.maxValueBytes).toBeGreaterThanOrEqual(1);
      expect(caps.ttlResolutionMs).toBeGreaterThanOrEqual(1);
      expect(caps.maxKeyBytes).toBeGreaterThanOrEqual(target.builtIn === false ? 64 : 250);
      expect(isLocalTier(tier)).toBe(caps.local);
      if (caps.local) {
        for (const m of ['peek', 'put', 'clear'])
          expect(typeof (tier as unknown as Record<string, unknown>)[m]).toBe('function');
      }
      if (caps.leases) {
        expect(hasAdd).toBe(true);
        expect(hasDeleteIf).toBe(true);
      }
      if (caps.counters) expect(hasIncrement).toBe(true);
      expect(typeof caps.enumerate).toBe('boolean');
      if (caps.enumerate) expect(typeof tier.entries).toBe('function');
      expect(caps).toMatchObject(target.capabilities ?? {});
    });

    it('connects, and connecting again is a no-op', async () => {
      await expect(tier.connect()).resolves.toBeUndefined();
      await tier.set(key('k'), h('v'), 60_000);
      expect(await tier.get(key('k'))).toEqual(h('v'));
    });

    it('gets what it set, overwrites, and misses as undefined', async () => {
      expect(await tier.get(key('k'))).toBeUndefined();
      await tier.set(key('k'), h('one'), 60_000);
      expect(await tier.get(key('k'))).toEqual(h('one'));
      await tier.set(key('k'), h('two'), 0);
      expect(await tier.get(key('k'))).toEqual(h('two'));
      expect(await tier.get(key('other'))).toBeUndefined();
    });

    it('accepts a key of its longest length', async () => {
      const bytes = Math.min(caps.maxKeyBytes, 1000);
      const long = `${prefix}:`.padEnd(bytes, 'k');
      expect(Buffer.byteLength(long)).toBe(bytes);
      await tier.set(long, h('long'), 60_000);
      expect(await tier.get(long)).toEqual(h('long'));
      expect(await tier.delete(long)).toBe(true);
    });

    it('getMany answers in order, with misses as undefined and duplicates each', async () => {
      await tier.set(key('a'), h('A'), 60_000);
      await tier.set(key('b'), h('B'), 60_000);
      const asked = [key('b'), key('missing'), key('a'), key('b'), key('a')];
      expect(await tier.getMany(asked)).toEqual([h('B'), undefined, h('A'), h('B'), h('A')]);
      expect(await tier.getMany([])).toEqual([]);
      expect(await tier.getMany([key('none'), key('nothing')])).toEqual([undefined, undefined]);

      // A batch large enough to span every server of a cluster.
      const keys = Array.from({ length: 300 }, (_, i) => key(`batch:${i}`));
      const stored = keys.filter((_, i) => i % 3 !== 0);
      await tier.setMany(stored.map((k) => ({ key: k, value: h(`value of ${k}`), ttlMs: 60_000 })));
      const query = [...keys, keys[1], keys[0]];
      const values = await tier.getMany(query);
      expect(values).toHaveLength(query.length);
      expect(values).toEqual(
        query.map((k) => (keys.indexOf(k) % 3 === 0 ? undefined : h(`value of ${k}`))),
      );
    });

    if (!local) {
      it('holds bytes exactly: empty, every byte value and 100 KB', async () => {
        const payloads = {
          empty: Buffer.alloc(0),
          bytes: Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
          mixed: Buffer.from([0, 255, 10, 13, 0x80, 0]),
          big: randomBytes(100 * 1024),
        };
        for (const [name, value] of Object.entries(payloads)) {
          await tier.set(key(name), value, 60_000);
          const back = await tier.get(key(name));
          expect(Buffer.isBuffer(back)).toBe(true);
          expect((back as Buffer).equals(value)).toBe(true);
        }
      });
    }

    it('setMany writes every entry, overwriting older values', async () => {
      const keys = Array.from({ length: 50 }, (_, i) => key(`many:${i}`));
      await tier.set(keys[0], h('old'), 60_000);
      await tier.setMany(
        keys.map((k, i) => ({ key: k, value: h(`v${i}`), ttlMs: i % 2 ? 0 : 60_000 })),
      );
      expect(await tier.getMany(keys)).toEqual(keys.map((_, i) => h(`v${i}`)));
      await expect(tier.setMany([])).resolves.toBeUndefined();
    });

    it('delete resolves whether the key held something', async () => {
      await tier.set(key('k'), h('v'), 60_000);
      expect(await tier.delete(key('k'))).toBe(true);
      expect(await tier.get(key('k'))).toBeUndefined();
      expect(await tier.delete(key('k'))).toBe(false);
      expect(await tier.delete(key('never'))).toBe(false);
    });

    it('deleteMany resolves whether any key held something', async () => {
      const keys = Array.from({ length: 10 }, (_, i) => key(`d:${i}`));
      await tier.setMany(keys.map((k) => ({ key: k, value: h(k), ttlMs: 60_000 })));
      expect(await tier.deleteMany([...keys.slice(0, 5), key('never')])).toBe(true);
      const after = await tier.getMany(keys);
      expect(after.slice(0, 5)).toEqual(Array(5).fill(undefined));
      expect(after.slice(5)).toEqual(keys.slice(5).map((k) => h(k)));
      expect(await tier.deleteMany([key('never'), keys[6], key('nor')])).toBe(true);
      expect(await tier.deleteMany(keys.slice(0, 5))).toBe(false);
      expect(await tier.deleteMany([key('never'), key('nor')])).toBe(false);
      expect(await tier.deleteMany([keys[5], keys[5]])).toBe(true);
      expect(await tier.get(keys[5])).toBeUndefined();
      expect(await tier.deleteMany(keys)).toBe(true); // the last three
      expect(await tier.getMany(keys)).toEqual(Array(10).fill(undefined));
      expect(await tier.deleteMany(keys)).toBe(false);
      expect(await tier.deleteMany([])).toBe(false);
    });

    if (!local) {
      it('is shared: another instance sees writes and deletes', async () => {
        await tier.set(key('k'), h('from one'), 60_000);
        expect(await other.get(key('k'))).toEqual(h('from one'));
        await other.set(key('k'), h('from two'), 60_000);
        expect(await tier.get(key('k'))).toEqual(h('from two'));
        expect(await other.delete(key('k'))).toBe(true);
        expect(await tier.get(key('k'))).toBeUndefined();
      });
    }

    it('expires entries after their TTL; ttl 0 never expires', async () => {
      await tier.set(key('short'), h('short'), shortTtl);
      await tier.setMany([{ key: key('short-many'), value: h('short'), ttlMs: shortTtl }]);
      await tier.set(key('long'), h('long'), 600_000);
      await tier.set(key('forever'), h('forever'), 0);
      if (hasAdd) expect(await tier.add!(key('added'), h('added'), shortTtl)).toBe(true);
      const expiring = [key('short'), key('short-many'), ...(hasAdd ? [key('added')] : [])];
      for (const k of expiring) expect(await tier.get(k)).toBeDefined();
      await expectExpiry(expiring, shortTtl);
      expect(await tier.get(key('long'))).toEqual(h('long'));
      expect(await tier.get(key('forever'))).toEqual(h('forever'));
      // An expired key is absent for every operation.
      expect(await tier.delete(key('short'))).toBe(false);
      if (hasAdd) expect(await tier.add!(key('added'), h('again'), 60_000)).toBe(true);
    });

    if (local) {
      it('local: put and peek are synchronous and agree with get; clear drops everything', async () => {
        if (!isLocalTier(tier)) throw new Error('a local tier must be a LocalTier');
        expect(tier.peek(key('k'))).toBeUndefined();
        tier.put(key('k'), h('v') as LocalRecord, 60_000);
        expect(tier.peek(key('k'))).toEqual(h('v'));
        expect(await tier.get(key('k'))).toEqual(h('v'));
        await tier.set(key('s'), h('s') as LocalRecord, 60_000);
        expect(tier.peek(key('s'))).toEqual(h('s'));
        tier.put(key('t'), h('t') as LocalRecord, 1000);
        if (target.clock) {
          await advance(1001);
          expect(tier.peek(key('t'))).toBeUndefined();
        }
        tier.clear();
        expect(tier.peek(key('k'))).toBeUndefined();
        expect(await tier.getMany([key('k'), key('s')])).toEqual([undefined, undefined]);
      });
    }

    if (caps.enumerate) {
      it('entries lists the live entries under a prefix, and only those', async () => {
        const listed = async (t: Tier<unknown>, under: string) => {
          const found = new Map<string, unknown>();
          for await (const [k, payload] of t.entries!(under)) {
            expect(found.has(k)).toBe(false); // each entry once
            found.set(k, payload);
          }
          return found;
        };
        const held = Array.from({ length: 30 }, (_, i) => key(`e:${i}`));
        await tier.setMany(
          held.map((k, i) => ({ key: k, value: h(`v${i}`), ttlMs: i % 2 ? 0 : 60_000 })),
        );
        await tier.set(key('deleted'), h('deleted'), 60_000);
        await tier.delete(key('deleted'));
        await tier.set(key('expiring'), h('expiring'), shortTtl);
        // Keys that only begin like the prefix, or hold it further in, are not under it.
        await tier.set(`${prefix}x:outside`, h('outside'), 60_000);
        await tier.set(`other:${prefix}:inside`, h('inside'), 60_000);
        const expected = new Map<string, unknown>(held.map((k, i) => [k, h(`v${i}`)]));
        expect(await listed(tier, `${prefix}:e:`)).toEqual(expected);
        await expectExpiry([key('expiring')], shortTtl);
        expect(await listed(tier, `${prefix}:`)).toEqual(expected);
        expect(await listed(tier, key('e:1'))).toEqual(
          new Map([...expected].filter(([k]) => k.startsWith(key('e:1')))),
        );
        expect(await listed(tier, key('none:'))).toEqual(new Map());
        // Another instance of a shared tier lists the same; '' lists everything it holds.
        expect(await listed(other, `${prefix}:`)).toEqual(expected);
        const all = await listed(tier, '');
        for (const k of [...held, `${prefix}x:outside`, `other:${prefix}:inside`])
          expect(all.has(k)).toBe(true);
        expect(all.has(key('deleted'))).toBe(false);
        expect(all.has(key('expiring'))).toBe(false);
      });
    }

    if (hasAdd || caps.leases) {
      it('add stores only when the key is absent', async () => {
        expect(await tier.add!(key('k'), h('first'), 60_000)).toBe(true);
        expect(await tier.add!(key('k'), h('second'), 60_000)).toBe(false);
        expect(await tier.get(key('k'))).toEqual(h('first'));
        await tier.set(key('k'), h('set'), 60_000);
        expect(await tier.add!(key('k'), h('third'), 60_000)).toBe(false);
        expect(await tier.get(key('k'))).toEqual(h('set'));
        expect(await tier.delete(key('k'))).toBe(true);
        expect(await tier.add!(key('k'), h('after delete'), 0)).toBe(true);
        expect(await tier.get(key('k'))).toEqual(h('after delete'));
      });

      it('concurrent adds: exactly one wins, and its value is stored', async () => {
        const instances = [tier, other];
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            instances[i % instances.length].add!(key('k'), h(`writer-${i}`), 60_000),
          ),
        );
        expect(results.filter(Boolean)).toHaveLength(1);
        expect(await tier.get(key('k'))).toEqual(h(`writer-${results.indexOf(true)}`));
        expect(await other.add!(key('k'), h('late'), 60_000)).toBe(false);
      });
    }

    if (hasDeleteIf || caps.leases) {
      it('deleteIf deletes only while the key holds the expected value', async () => {
        const k = key('cad');
        const mine = h('holder-a');
        expect(await tier.deleteIf!(k, mine)).toBe(false); // absent
        expect(await tier.add!(k, mine, 60_000)).toBe(true);
        expect(await tier.add!(k, h('holder-b'), 60_000)).toBe(false);
        expect(await tier.deleteIf!(k, h('holder-b'))).toBe(false);
        expect(await tier.get(k)).toEqual(mine);
        expect(await other.deleteIf!(k, h('holder-a'))).toBe(true);
        expect(await tier.get(k)).toBeUndefined();
        expect(await tier.deleteIf!(k, h('holder-a'))).toBe(false); // already gone
        expect(await tier.add!(k, h('holder-b'), 60_000)).toBe(true);
      });
    }

    if (hasIncrement || caps.counters) {
      it('increment creates a counter at `by`, adds, subtracts and reads with 0', async () => {
        const k = key('ctr');
        expect(await tier.increment!(k, 5, 60_000)).toBe(5);
        expect(await tier.increment!(k, 2, 60_000)).toBe(7);
        expect(await tier.increment!(k, -3, 60_000)).toBe(4);
        expect(await tier.increment!(k, 0, 60_000)).toBe(4);
        expect(await other.increment!(k, 10, 60_000)).toBe(14);
        expect(await tier.increment!(key('zero'), 0, 0)).toBe(0);
      });

      it(
        target.signedCounters
          ? 'increment goes below zero, creating a counter at a negative `by`'
          : 'increment floors at 0 and creates a counter at max(by, 0)',
        async () => {
          const k = key('neg');
          if (target.signedCounters) {
            expect(await tier.increment!(k, -5, 0)).toBe(-5);
            expect(await tier.increment!(k, 12, 0)).toBe(7);
            expect(await tier.increment!(k, -10, 0)).toBe(-3);
            expect(await tier.increment!(k, 2 ** 40, 0)).toBe(2 ** 40 - 3);
          } else {
            expect(await tier.increment!(k, 5, 60_000)).toBe(5);
            expect(await tier.increment!(k, -10, 60_000)).toBe(0);
            expect(await tier.increment!(key('new'), -4, 60_000)).toBe(0);
            expect(await tier.increment!(k, 2 ** 40, 60_000)).toBe(2 ** 40);
          }
        },
      );

      it('delete removes a counter: later increments start again from `by`', async () => {
        const k = key('reset');
        expect(await tier.increment!(k, 41, 0)).toBe(41);
        await tier.delete(k);
        expect(await tier.increment!(k, 1, 0)).toBe(1);
        await tier.deleteMany([k, k]);
        expect(await other.increment!(k, 3, 0)).toBe(3);
      });

      it('1,000 concurrent increments, from two instances where shared, count exactly', async () => {
        const k = key('concurrent');
        const instances = [tier, other];
        const results = await Promise.all(
          Array.from({ length: 1000 }, (_, i) =>
            instances[i % instances.length].increment!(k, 1, 60_000),
          ),
        );
        expect(results.every((n) => Number.isInteger(n) && n >= 1 && n <= 1000)).toBe(true);
        expect(Math.max(...results)).toBe(1000);
        expect(await tier.increment!(k, 0, 60_000)).toBe(1000);
      });
    }

    if (hasRaise) {
      it('raise keeps the highest number, whatever order they come in', async () => {
        const k = key('max');
        await tier.raise!(k, 5, 60_000);
        expect(await tier.get(k)).toEqual(raised(5));
        await tier.raise!(k, 3, 60_000);
        expect(await tier.get(k)).toEqual(raised(5));
        await tier.raise!(k, 5, 60_000);
        expect(await tier.get(k)).toEqual(raised(5));
        await other.raise!(k, 8, 60_000);
        expect(await tier.get(k)).toEqual(raised(8));
        await other.raise!(k, 7, 0);
        expect(await other.get(k)).toEqual(raised(8));
        const top = Number.MAX_SAFE_INTEGER;
        await tier.raise!(k, top, 0);
        await tier.raise!(k, top - 1, 0);
        expect(await tier.get(k)).toEqual(raised(top));
        await tier.raise!(key('zero'), 0, 0);
        expect(await tier.get(key('zero'))).toEqual(raised(0));
      });

      it('concurrent raises of 1..50 in shuffled order, from two instances where shared: 50', async () => {
        const instances = [tier, other];
        for (let run = 0; run < 3; run++) {
          const k = key(`shuffled:${run}`);
          const numbers = shuffle(Array.from({ length: 50 }, (_, i) => i + 1));
          await Promise.all(numbers.map((n, i) => instances[i % 2].raise!(k, n, 60_000)));
          expect(await tier.get(k)).toEqual(raised(50));
        }
      });

      it('raise expires after its TTL (0: never); a raise that changes nothing keeps the expiry', async () => {
        await tier.raise!(key('short'), 10, shortTtl);
        await tier.raise!(key('short'), 4, 600_000); // lower: nothing written, expiry included
        await tier.raise!(key('forever'), 10, 0);
        await tier.raise!(key('forever'), 4, shortTtl);
        expect(await tier.get(key('short'))).toEqual(raised(10));
        await expectExpiry([key('short')], shortTtl);
        expect(await tier.get(key('forever'))).toEqual(raised(10));
        // Gone: a higher number is stored again.
        await tier.raise!(key('short'), 11, 60_000);
        expect(await tier.get(key('short'))).toEqual(raised(11));
      });

      it('raise refuses a number that is not a non-negative safe integer', async () => {
        for (const n of [-1, 1.5, NaN, Infinity, 2 ** 53, '7' as unknown as number])
          await expect(tier.raise!(key('bad'), n, 0)).rejects.toThrow(RangeError);
        expect(await tier.get(key('bad'))).toBeUndefined();
      });
    }

    it('close makes later calls reject, and closing again is a no-op', async () => {
      const closing = target.create();
      await closing.connect();
      await closing.set(key('k'), h('v'), 60_000);
      await closing.close();
      const closed = { code: 'E_CLOSED' };
      await expect(closing.get(key('k'))).rejects.toMatchObject(closed);
      await expect(closing.getMany([key('k')])).rejects.toMatchObject(closed);
      await expect(closing.set(key('k'), h('v'), 60_000)).rejects.toMatchObject(closed);
      await expect(
        closing.setMany([{ key: key('k'), value: h('v'), ttlMs: 0 }]),
      ).rejects.toMatchObject(closed);
      await expect(closing.delete(key('k'))).rejects.toMatchObject(closed);
      await expect(closing.deleteMany([key('k')])).rejects.toMatchObject(closed);
      if (hasAdd) await expect(closing.add!(key('k'), h('v'), 0)).rejects.toMatchObject(closed);
      if (hasIncrement)
        await expect(closing.increment!(key('n'), 1, 0)).rejects.toMatchObject(closed);
      if (hasRaise) await expect(closing.raise!(key('r'), 1, 0)).rejects.toMatchObject(closed);
      if (caps.enumerate)
        await expect(closing.entries!('')[Symbol.asyncIterator]().next()).rejects.toMatchObject(
          closed,
        );
      await expect(closing.close()).resolves.toBeUndefined();
      // Closing one instance leaves the others working.
      expect(await tier.getMany([key('k')])).toHaveLength(1);
    });
  });
}

/** `list` in a random order (Fisher-Yates, in place). */
function shuffle<T>(list: T[]): T[] {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
  return list;
}
