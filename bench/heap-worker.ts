import { LRUCache } from 'lru-cache';
import { TieredStore } from '../lib';
import { PRODUCT } from './fixtures';

/**
 * Run in a fresh process (`--expose-gc`) by `hit-path.bench.ts`: the heap that ENTRIES entries
 * hold, each a distinct product object, in raw lru-cache (BENCH_HEAP=lru) or in our memory tier
 * in its default copy mode (BENCH_HEAP=ours). Sends heap bytes per entry to the parent.
 */
const ENTRIES = Number(process.env.BENCH_HEAP_ENTRIES ?? 100_000);

function heapUsed(): number {
  for (let i = 0; i < 3; i++) global.gc!();
  return process.memoryUsage().heapUsed;
}

async function main(): Promise<void> {
  const keys = Array.from({ length: ENTRIES }, (_, i) => `product:${i}`);
  const before = heapUsed();
  let holder: unknown;
  if (process.env.BENCH_HEAP === 'lru') {
    const lru = new LRUCache<string, object>({ max: ENTRIES });
    for (let i = 0; i < ENTRIES; i++) lru.set(keys[i], { ...PRODUCT, id: i });
    holder = lru;
  } else {
    const store = new TieredStore({ tiers: [{ type: 'memory', maxEntries: ENTRIES }] });
    for (let i = 0; i < ENTRIES; i++) await store.set(keys[i], { ...PRODUCT, id: i });
    if ((await store.get(keys[0])) === undefined) throw new Error('evicted');
    holder = store;
  }
  const perEntry = (heapUsed() - before) / ENTRIES;
  process.send!({ perEntry, held: holder !== undefined }, () => process.exit(0));
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
