import { createCache } from 'cache-manager';
import { klona } from 'klona/json';
import { LRUCache } from 'lru-cache';
import rfdc from 'rfdc';
import { TieredStore } from '../lib';
import { Codec } from '../lib/serialization/codec';
import { copyJsonTree, nestedKeys } from '../lib/serialization/json-tree';
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

/**
 * The copy the default memory tier makes on every hit, beside the deep-copy libraries that could
 * make it and beside decoding the entry's bytes (what a byte-keeping memory tier does).
 */
export async function jsonTreeCopy(): Promise<boolean> {
  const tree = JSON.parse(JSON.stringify(VALUE)) as typeof VALUE;
  const hint = nestedKeys(tree);
  const codec = new Codec();
  const bytes = codec.encode(tree, 0);
  const copyWithRfdc = rfdc({ proto: false, circles: false });
  const loop = (copy: () => unknown) => async (ops: number) => {
    for (let i = 0; i < ops; i++) if (copy() === tree) throw new Error('not a copy');
  };
  const results = await compare(
    [
      { name: 'klona/json', run: loop(() => klona(tree)) },
      { name: 'rfdc', run: loop(() => copyWithRfdc(tree)) },
      { name: 'structuredClone', run: loop(() => structuredClone(tree)) },
      { name: 'decode the bytes (JSON.parse)', run: loop(() => codec.decode(bytes).value) },
      { name: 'ours: copyJsonTree', run: loop(() => copyJsonTree(tree)) },
      { name: 'ours: copyJsonTree with its hint', run: loop(() => copyJsonTree(tree, hint)) },
    ],
    { ops: 500_000 },
  );
  return report("copy of one small JSON tree (the memory tier hit's copy)", results, [
    {
      label: 'copyJsonTree vs klona/json',
      ours: 'ours: copyJsonTree',
      baseline: 'klona/json',
      atLeast: 1,
    },
    {
      label: 'copyJsonTree with hint vs decoding bytes',
      ours: 'ours: copyJsonTree with its hint',
      baseline: 'decode the bytes (JSON.parse)',
      atLeast: 1,
    },
  ]);
}
