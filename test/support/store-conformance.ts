import { createCache } from 'cache-manager';
import { Keyv } from 'keyv';
import {
  TieredStore,
  createTieredKeyv,
  type TieredStoreOptions,
  type TierOptions,
} from '../../lib';
import { uniqueName } from '../harness/env';
import { ManualClock } from './manual-clock';
import { ROUND_TRIP_VALUES, expectSameValue } from './values';

export interface ConformanceTarget {
  /** Tiers of the store under test (fresh objects on every call). */
  tiers: () => TierOptions[];
  /** Whether values come back as copies (false only for the `serialize: false` memory tier). */
  copies?: boolean;
}

/**
 * One conformance suite for every tier alone and for chains of them: the store's contract must
 * not depend on which tiers sit behind it. Every store gets its own namespace, so runs against
 * shared servers never see each other's keys.
 */
export function describeStoreConformance(name: string, target: ConformanceTarget): void {
  describe(`store conformance: ${name}`, () => {
    const open: TieredStore[] = [];
    const errors: unknown[] = [];
    let clock: ManualClock;
    let namespace: string;

    async function makeStore(extra: Partial<TieredStoreOptions> = {}): Promise<TieredStore> {
      const store = new TieredStore({ tiers: target.tiers(), namespace, clock, ...extra });
      store.on('error', (e) => errors.push(e));
      open.push(store);
      await store.connect({ failFast: true });
      return store;
    }

    beforeEach(() => {
      clock = new ManualClock();
      namespace = uniqueName('conf');
    });

    afterEach(async () => {
      await Promise.all(open.splice(0).map((s) => s.disconnect()));
      // Healthy servers: no tier may have reported a failure.
      expect(errors.splice(0)).toEqual([]);
    });

    it('sets, gets, checks and deletes', async () => {
      const store = await makeStore();
      expect(await store.get('k')).toBeUndefined();
      expect(await store.has('k')).toBe(false);
      await store.set('k', { a: 1 });
      expect(await store.get('k')).toEqual({ a: 1 });
      expect(await store.has('k')).toBe(true);
      await store.set('k', 'replaced');
      expect(await store.get('k')).toBe('replaced');
      expect(await store.delete('k')).toBe(true);
      expect(await store.get('k')).toBeUndefined();
      expect(await store.has('k')).toBe(false);
    });

    it('getMany returns values in order, misses as undefined, duplicates each', async () => {
      const store = await makeStore();
      await store.setMany([
        { key: 'a', value: 1 },
        { key: 'b', value: { two: 2 } },
        { key: 'c', value: [3] },
      ]);
      const got = await store.getMany(['c', 'missing', 'a', 'b', 'a']);
      expect(got).toEqual([[3], undefined, 1, { two: 2 }, 1]);
      expect(await store.getMany([])).toEqual([]);
      const many = Array.from({ length: 150 }, (_, i) => ({ key: `m${i}`, value: i }));
      await store.setMany(many);
      expect(await store.getMany(many.map((e) => e.key))).toEqual(many.map((e) => e.value));
    });

    it('deleteMany removes only the named keys', async () => {
      const store = await makeStore();
      await store.setMany(['a', 'b', 'c', 'd'].map((key) => ({ key, value: key.toUpperCase() })));
      expect(await store.deleteMany(['a', 'c', 'never-set'])).toBe(true);
      expect(await store.getMany(['a', 'b', 'c', 'd'])).toEqual([undefined, 'B', undefined, 'D']);
    });

    it.each(ROUND_TRIP_VALUES)('round-trips %s exactly', async (_label, value) => {
      const store = await makeStore();
      await store.set('value', value);
      expectSameValue(await store.get('value'), value);
      expectSameValue((await store.getMany(['value']))[0], value);
    });

    it('expires entries by TTL (injected clock), default TTL included', async () => {
      const store = await makeStore({ ttl: 60_000 });
      // 5 s, not less: the servers also expire entries by their own clocks, in whole seconds, and
      // a busy machine can take a second between these writes and the reads that follow.
      await store.set('short', 's', 5000);
      await store.set('default', 'd');
      await store.set('forever', 'f', 0);
      clock.advance(4999);
      expect(await store.getMany(['short', 'default', 'forever'])).toEqual(['s', 'd', 'f']);
      clock.advance(1);
      expect(await store.get('short')).toBeUndefined();
      expect(await store.get('default')).toBe('d');
      clock.advance(55_000);
      expect(await store.getMany(['short', 'default', 'forever'])).toEqual([
        undefined,
        undefined,
        'f',
      ]);
    });

    it('keeps long, unicode and unsafe keys distinct', async () => {
      const store = await makeStore();
      const long = 'x'.repeat(300);
      const keys = [
        long,
        long + 'y',
        'ключ',
        '鍵🔑',
        'with space',
        'with\nnewline',
        'with\ttab',
        'é'.repeat(200),
      ];
      await store.setMany(keys.map((key, i) => ({ key, value: i })));
      expect(await store.getMany(keys)).toEqual(keys.map((_, i) => i));
      await store.delete(long);
      expect(await store.get(long)).toBeUndefined();
      expect(await store.get(long + 'y')).toBe(1);
    });

    it('isolates namespaces and versions, and clear() invalidates only its own', async () => {
      const a = await makeStore();
      const v2 = await makeStore({ version: 2 });
      const other = await makeStore({ namespace: namespace + '_other' });
      await a.set('k', 'a');
      await v2.set('k', 'v2');
      await other.set('k', 'other');
      expect(await a.get('k')).toBe('a');
      expect(await v2.get('k')).toBe('v2');
      expect(await other.get('k')).toBe('other');

      await a.clear();
      expect(await a.get('k')).toBeUndefined();
      expect(await other.get('k')).toBe('other');
      await a.set('k', 'after clear');
      expect(await a.get('k')).toBe('after clear');
    });

    it('refuses unserializable values with a TypeError and keeps the old value', async () => {
      const store = await makeStore();
      await store.set('k', 'old');
      const circular: Record<string, unknown> = { name: 'loop' };
      circular.self = circular;
      await expect(store.set('k', { fn: () => 1 })).rejects.toThrow(
        new TypeError('value cannot be cached: (value).fn is a function'),
      );
      await expect(store.set('k', { s: Symbol('x') })).rejects.toThrow(/\(value\)\.s is a symbol/);
      await expect(store.set('k', circular)).rejects.toThrow(
        /\(value\)\.self is a circular reference/,
      );
      expect(await store.get('k')).toBe('old');
    });

    it('rejects unusable keys with a clear TypeError', async () => {
      const store = await makeStore();
      await expect(store.get('')).rejects.toThrow('cache key must not be empty');
      await expect(store.set('\ud800', 1)).rejects.toThrow(/lone UTF-16 surrogate/);
    });

    if (target.copies === false) {
      it('hands out the stored object itself', async () => {
        const store = await makeStore();
        const value = { list: [1] };
        await store.set('obj', value);
        expect(await store.get('obj')).toBe(value);
        expect(store.peekEntry('obj')?.value).toBe(value);
      });
    } else {
      type Rich = { list: number[]; raw?: Buffer; bytes?: Uint8Array };
      const mutate = (v: Rich | undefined): void => {
        v!.list.push(99);
        if (v!.raw) v!.raw[0] = 99;
        if (v!.bytes) v!.bytes[0] = 99;
      };
      it.each([
        ['a JSON tree', (): Rich => ({ list: [1], nested: { deep: [{ n: 1 }] } }) as Rich],
        [
          'a value with a Date, a Map, a Buffer and a Uint8Array',
          (): Rich =>
            ({
              list: [1],
              at: new Date(5),
              m: new Map([['k', [1]]]),
              raw: Buffer.from([1, 2, 3]),
              bytes: new Uint8Array([4, 5]),
            }) as Rich,
        ],
      ])('hands out independent copies of %s', async (_label, make) => {
        const store = await makeStore();
        const value = make();
        const original = make();
        await store.set('obj', value);
        // The caller's object is not what the store keeps…
        mutate(value);
        expect(await store.get('obj')).toEqual(original);
        // …and every read, whatever the path, is its own copy, down to its bytes.
        const reads = [
          await store.get<Rich>('obj'),
          ...(await store.getMany<Rich>(['obj', 'obj'])),
          store.peekEntry<Rich>('obj')?.value ?? (await store.get<Rich>('obj')),
          (await store.getEntry<Rich>('obj'))?.value,
        ];
        for (const read of reads) {
          expect(read).toEqual(original);
          mutate(read);
        }
        expect(new Set(reads).size).toBe(reads.length);
        expect(await store.get('obj')).toEqual(original);
      });
    }

    it('works behind Keyv and cache-manager, Dates and Maps intact', async () => {
      const store = await makeStore();
      const cache = createCache({ stores: [createTieredKeyv(store)] });
      const value = { at: new Date(5), m: new Map([['k', 1n]]) };
      await cache.set('cm', value, 60_000);
      expectSameValue(await cache.get('cm'), value);
      expect(await cache.mget(['cm', 'none'])).toEqual([value, undefined]);
      await cache.del('cm');
      expect(await cache.get('cm')).toBeUndefined();
    });

    it('shares every entry between Keyv and the store under the same key, both ways', async () => {
      const store = await makeStore();
      const keyv = createTieredKeyv(store);
      await keyv.set('from-keyv', { n: 1 }, 60_000);
      expect(await store.get('from-keyv')).toEqual({ n: 1 });
      await store.set('from-store', { at: new Date(7) });
      expectSameValue(await keyv.get('from-store'), { at: new Date(7) });
      await store.delete('from-keyv');
      expect(await keyv.get('from-keyv')).toBeUndefined();
      await keyv.delete('from-store');
      expect(await store.get('from-store')).toBeUndefined();
    });

    it('refuses to sit inside Keyv bare, where it would share nothing', async () => {
      const store = await makeStore();
      expect(() => new Keyv({ store })).toThrow(/use createTieredKeyv\(store\)/);
      expect(() => new Keyv({ store, serialize: undefined, deserialize: undefined })).toThrow(
        expect.objectContaining({ code: 'E_INVALID_OPTION' }),
      );
    });

    it("keeps Keyv's delete contract: true only when something was deleted", async () => {
      const store = await makeStore();
      const keyv = createTieredKeyv(store);
      expect(await keyv.delete('never-set')).toBe(false);
      expect(await store.delete('never-set')).toBe(false);
      await keyv.set('d1', 1);
      expect(await keyv.delete('d1')).toBe(true);
      expect(await keyv.delete('d1')).toBe(false);
      expect(await store.deleteMany(['none-1', 'none-2'])).toBe(false);
      await store.set('d2', 2);
      expect(await keyv.deleteMany(['d2', 'none-3'])).toBe(true);
      expect(await store.has('d2')).toBe(false);
      expect(await keyv.deleteMany(['d2', 'none-3'])).toBe(false);
    });

    it('counts with increment and decrement', async () => {
      const store = await makeStore();
      expect(await store.increment('n')).toBe(1);
      expect(await store.increment('n', 10)).toBe(11);
      expect(await store.decrement('n', 4)).toBe(7);
      expect(await store.increment('n', 0)).toBe(7);
    });
  });
}
