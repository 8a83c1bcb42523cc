import { AsyncLocalStorage } from 'node:async_hooks';
import { TieredCache, TieredStore } from '../lib';
import { PRODUCT } from './fixtures';

/**
 * Run in a fresh process by `hit-path.bench.ts`: the cost of an application's own awaited
 * promises (an awaited `.then` loop) before the module is used, after `getOrSet` has run (misses,
 * joined calls, a factory looking up its own key, hits), and, as a control that shows what the
 * loop detects, after one `AsyncLocalStorage.run()`. Sends the medians (ops/s) to the parent.
 */
const OPS = 1_000_000;
const ROUNDS = 7;

const inc = (i: number) => i + 1;

async function thenLoop(ops: number): Promise<number> {
  let x = 0;
  for (let i = 0; i < ops; i++) x += await Promise.resolve(i).then(inc);
  return x;
}

async function median(): Promise<number> {
  const rates: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    await thenLoop(OPS);
    rates.push(OPS / (Number(process.hrtime.bigint() - t0) / 1e9));
  }
  return rates.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)];
}

async function useTheCache(): Promise<void> {
  const options = { tiers: [{ type: 'memory' as const }] };
  const cache = new TieredCache(new TieredStore(options), options);
  await cache.store.connect({ failFast: true });
  const slow = async () => {
    await new Promise((r) => setTimeout(r, 5));
    return PRODUCT;
  };
  await Promise.all(Array.from({ length: 100 }, (_, i) => cache.getOrSet(`k${i % 10}`, slow)));
  await cache.getOrSet('nested', () => cache.getOrSet('nested', () => PRODUCT));
  for (let i = 0; i < 10_000; i++) await cache.getOrSet(`k${i % 10}`, slow);
  await cache.store.disconnect();
}

async function main(): Promise<void> {
  await thenLoop(OPS); // warm-up
  const before = await median();
  await useTheCache();
  const after = await median();
  new AsyncLocalStorage<number>().run(1, () => undefined);
  const withAls = await median();
  process.send!({ before, after, withAls }, () => process.exit(0));
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
