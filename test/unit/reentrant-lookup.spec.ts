import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTieredStore, TieredCache } from '../../lib';
import { MapTier } from '../support/map-tier';

/**
 * A factory that looks up its own key, and callers of a factory call that runs long, with no
 * async-context tracking: memory tier and an in-process far tier (the lease is on the far tier).
 */
describe('lookups of a key from inside its own factory', () => {
  const open: TieredCache[] = [];
  let warn: jest.SpiedFunction<Logger['warn']>;

  async function cache(lockTimeout: number): Promise<TieredCache> {
    const store = createTieredStore({ tiers: [{ type: 'memory' }, new MapTier({ name: 'far' })] });
    const c = new TieredCache(store, { herd: { lockTimeout } });
    await store.connect();
    open.push(c);
    return c;
  }

  /** The overdue warnings logged so far. */
  const overdue = () => warn.mock.calls.filter(([m]) => String(m).includes('past lockTimeout'));

  beforeEach(() => {
    warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.store.disconnect()));
    jest.restoreAllMocks();
  });

  it('made before the factory awaits: calls its own factory at once; the outer call stores', async () => {
    const c = await cache(60_000);
    const value = await c.getOrSet('k', () =>
      c.getOrSet('k', () => 'inner').then((inner) => `outer(${inner})`),
    );
    expect(value).toBe('outer(inner)');
    expect(await c.get('k')).toBe('outer(inner)');
    expect(overdue()).toEqual([]);
  });

  it('made after an await: answered once the factory has run lockTimeout, with one warning', async () => {
    const c = await cache(300);
    const value = await c.getOrSet('k', async () => {
      await sleep(1);
      return `outer(${await c.getOrSet('k', () => 'inner')})`;
    });
    expect(value).toBe('outer(inner)');
    expect(await c.get('k')).toBe('outer(inner)');
    expect(overdue()).toHaveLength(1);
    expect(String(overdue()[0][0])).toContain('"k" has run past lockTimeout (300 ms)');
  });

  it('callers of a factory call past lockTimeout share one more call; the first call stores', async () => {
    const c = await cache(300);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let calls = 0;
    const factory = async () => {
      const call = ++calls;
      if (call === 1) await held;
      return `call ${call}`;
    };
    const first = c.getOrSet('k', factory);
    const others = await Promise.all(Array.from({ length: 50 }, () => c.getOrSet('k', factory)));
    expect(others).toEqual(others.map(() => 'call 2'));
    expect(calls).toBe(2);
    expect(overdue()).toHaveLength(1);
    release();
    expect(await first).toBe('call 1');
    expect(await c.get('k')).toBe('call 1');
  });

  it('leaves no timer behind once the factory call has ended', async () => {
    const c = await cache(60_000);
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const slow = async () => {
      await sleep(50);
      return 'v';
    };
    const values = await Promise.all(Array.from({ length: 20 }, () => c.getOrSet('k', slow)));
    expect(values).toEqual(values.map(() => 'v'));
    expect(timers()).toBe(before);
    expect(overdue()).toEqual([]);
  });

  it('uses no AsyncLocalStorage (it would slow every promise of the app)', async () => {
    const run = jest.spyOn(AsyncLocalStorage.prototype, 'run');
    const enterWith = jest.spyOn(AsyncLocalStorage.prototype, 'enterWith');
    const c = await cache(60_000);
    await c.getOrSet('k', () => c.getOrSet('k', () => 1));
    await Promise.all(Array.from({ length: 5 }, () => c.getOrSet('other', async () => 2)));
    await c.getOrSet('k', () => 3);
    expect(run).not.toHaveBeenCalled();
    expect(enterWith).not.toHaveBeenCalled();
  });
});
