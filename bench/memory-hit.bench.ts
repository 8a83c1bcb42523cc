import { createCache } from 'cache-manager';
import { LRUCache } from 'lru-cache';
import { TieredStore } from '../lib';
import { PRODUCT, productKeys } from './fixtures';
import { compare, report } from './measure';

const VALUE = PRODUCT;
const KEYS = productKeys(1000);

/**
 * Memory-tier hit through the store's own `get`, in both memory-tier modes, beside a raw
 * lru-cache `get` awaited in the same loop and cache-manager's `get` over its default Keyv
 * memory store.
 */
export async function memoryHit(): Promise<boolean> {
  const lru = new LRUCache<string, object>({ max: 10_000 });
  const copies = new TieredStore({ tiers: [{ type: 'memory', ttl: 0 }] });
  const refs = new TieredStore({ tiers: [{ type: 'memory', ttl: 0, serialize: false }] });
  const cacheManager = createCache();
  for (const k of KEYS) {
    lru.set(k, VALUE);
    await copies.set(k, VALUE);
    await refs.set(k, VALUE);
    await cacheManager.set(k, VALUE);
  }
  const loop = (get: (k: string) => Promise<unknown> | unknown) => async (ops: number) => {
    for (let i = 0; i < ops; i++) {
      if ((await get(KEYS[i % KEYS.length])) === undefined) throw new Error('benchmark miss');
    }
  };
  const results = await compare(
    [
      { name: 'raw lru-cache get (awaited)', run: loop((k) => lru.get(k)) },
      { name: 'cache-manager get (default Keyv memory)', run: loop((k) => cacheManager.get(k)) },
      { name: 'ours: memory tier, serialize: false', run: loop((k) => refs.get(k)) },
      { name: 'ours: memory tier, copies (default)', run: loop((k) => copies.get(k)) },
    ],
    { ops: 200_000 },
  );
  const ok = report('memory-tier hit (one small object, sequential awaits)', results, [
    {
      label: 'serialize: false vs raw lru-cache',
      ours: 'ours: memory tier, serialize: false',
      baseline: 'raw lru-cache get (awaited)',
      atLeast: 0.5,
    },
    {
      label: 'serialize: false vs cache-manager',
      ours: 'ours: memory tier, serialize: false',
      baseline: 'cache-manager get (default Keyv memory)',
      atLeast: 2,
    },
    {
      label: 'copies vs raw lru-cache',
      ours: 'ours: memory tier, copies (default)',
      baseline: 'raw lru-cache get (awaited)',
      atLeast: 0.5,
    },
    {
      label: 'copies vs cache-manager',
      ours: 'ours: memory tier, copies (default)',
      baseline: 'cache-manager get (default Keyv memory)',
      atLeast: 2,
    },
  ]);
  await Promise.all([copies.disconnect(), refs.disconnect(), cacheManager.disconnect()]);
  return ok;
}
