import { LRUCache } from 'lru-cache';
import { TieredStore } from '../lib';
import { copyJsonTree } from '../lib/serialization/json-tree';
import { PRODUCT } from './fixtures';

/**
 * Run in a fresh process (`--expose-gc`) by `hit-path.bench.ts`: the heap that ENTRIES entries
 * hold, each a distinct product object, in raw lru-cache (BENCH_HEAP=lru), in lru-cache as
 * private copies (BENCH_HEAP=lru-copy) or in our memory tier in its default copy mode
 * (BENCH_HEAP=ours). Sends the parent heap bytes per entry once written
 * and again once every entry has been read.
 */
const ENTRIES = Number(process.env.BENCH_HEAP_ENTRIES ?? 100_000);

function heapUsed(): number {
  for (let i = 0; i < 3; i++) global.gc!();
  return process.memoryUsage().heapUsed;
}

async function main(): Promise<void> {
  const keys = Array.from({ length: ENTRIES }, (_, i) => `product:${i}`);
  const before = heapUsed();
  let read: (key: string) => unknown;
  let holder: object;
  if (process.env.BENCH_HEAP === 'lru') {
    const lru = new LRUCache<string, object>({ max: ENTRIES });
    for (let i = 0; i < ENTRIES; i++) lru.set(keys[i], { ...PRODUCT, id: i });
    read = (k) => lru.get(k);
    holder = lru;
  } else if (process.env.BENCH_HEAP === 'lru-copy') {
    // What the copy mode keeps at the least: lru-cache holding a private copy of each value.
    const lru = new LRUCache<string, object>({ max: ENTRIES });
    for (let i = 0; i < ENTRIES; i++) lru.set(keys[i], copyJsonTree({ ...PRODUCT, id: i }));
    read = (k) => lru.get(k);
    holder = lru;
  } else {
    const store = new TieredStore({ tiers: [{ type: 'memory', maxEntries: ENTRIES }] });
    for (let i = 0; i < ENTRIES; i++) await store.set(keys[i], { ...PRODUCT, id: i });
    read = (k) => store.get(k);
    holder = store;
  }
  const written = (heapUsed() - before) / ENTRIES;
  // What a tier holds once its entries are read: it may keep what it works out on a first read.
  for (const k of keys) if ((await read(k)) === undefined) throw new Error('evicted');
  const afterReads = (heapUsed() - before) / ENTRIES;
  // `held` keeps the cache alive until measured.
  process.send!({ written, afterReads, held: holder !== undefined }, () => process.exit(0));
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
