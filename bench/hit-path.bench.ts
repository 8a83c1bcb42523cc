import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createCache } from 'cache-manager';
import { LRUCache } from 'lru-cache';
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { Cached, TieredCache, TieredCacheModule, TieredStore } from '../lib';
import { copyJsonTree, nestedKeys } from '../lib/serialization/json-tree';
import { PRODUCT, productKeys } from './fixtures';
import { compare, fmt, load, report, stats } from './measure';

/**
 * The hit path of read-through: a `getOrSet` hit and a `@Cached` service method hit against a
 * plain `get` of the same memory tier (copies, the default), cache-manager's `wrap` hit and
 * BentoCache's `getOrSet` hit (memory L1), in one run; raw lru-cache as a reference. Then the cost
 * of the host application's own promises before and after the module is used, in a fresh process.
 */
const KEYS = productKeys(1000);
const IDS = KEYS.map((_, i) => i);
const TTL = 10 * 60_000;
const OPS = 200_000;
const ROUNDS = 9;

@Injectable()
class Catalog {
  calls = 0;
  @Cached({ ttl: TTL })
  async product(id: number): Promise<typeof PRODUCT> {
    this.calls++;
    return { ...PRODUCT, id };
  }
}

@Module({
  imports: [TieredCacheModule.forRoot({ tiers: [{ type: 'memory', ttl: 0 }], logErrors: false })],
  providers: [Catalog],
})
class HitPathModule {}

/** `ops` sequential awaited calls of `call` over KEYS (or IDS) round-robin; a miss throws. */
function hits<K>(keys: readonly K[], call: (key: K) => unknown): (ops: number) => Promise<void> {
  return async (ops) => {
    for (let i = 0; i < ops; i++) {
      if ((await call(keys[i % keys.length])) === undefined) throw new Error('benchmark miss');
    }
  };
}

async function bento() {
  const { BentoCache, bentostore } = await import('bentocache');
  const { memoryDriver } = await import('bentocache/drivers/memory');
  return new BentoCache({
    default: 'memory',
    stores: { memory: bentostore().useL1Layer(memoryDriver({ maxItems: 10_000 })) },
  });
}

export async function hitPath(): Promise<boolean> {
  console.log(
    `\n# hit path: memory-tier hits of ${KEYS.length} keys, one small object, sequential awaits; ${load()}`,
  );
  const app = await NestFactory.createApplicationContext(HitPathModule, { logger: false });
  const cache = app.get(TieredCache);
  const catalog = app.get(Catalog);
  const lru = new LRUCache<string, object>({ max: 10_000 });
  const cacheManager = createCache();
  const bc = await bento();
  const factory = () => PRODUCT;
  const options = { ttl: TTL };
  for (const [i, k] of KEYS.entries()) {
    lru.set(k, PRODUCT);
    await cache.set(k, PRODUCT, TTL);
    await cache.getOrSet(`g:${k}`, factory, options);
    await catalog.product(i);
    await cacheManager.wrap(k, factory, TTL);
    await bc.getOrSet({ key: k, factory, ttl: TTL });
  }
  const calls = catalog.calls;
  const gKeys = KEYS.map((k) => `g:${k}`);

  const names = {
    lru: 'raw lru-cache get (awaited), reference',
    get: 'ours: TieredCache.get',
    getOrSet: 'ours: TieredCache.getOrSet',
    cached: 'ours: @Cached service method',
    wrap: 'cache-manager wrap (default Keyv memory)',
    bento: 'BentoCache getOrSet (memory L1)',
  };
  const results = await compare(
    [
      { name: names.lru, run: hits(KEYS, (k) => lru.get(k)) },
      { name: names.get, run: hits(KEYS, (k) => cache.get(k)) },
      { name: names.getOrSet, run: hits(gKeys, (k) => cache.getOrSet(k, factory, options)) },
      { name: names.cached, run: hits(IDS, (id) => catalog.product(id)) },
      { name: names.wrap, run: hits(KEYS, (k) => cacheManager.wrap(k, factory, TTL)) },
      { name: names.bento, run: hits(KEYS, (k) => bc.getOrSet({ key: k, factory, ttl: TTL })) },
    ],
    { ops: OPS, rounds: ROUNDS },
  );
  if (catalog.calls !== calls) throw new Error('@Cached method bench: the method ran on a hit');
  let ok = report('memory-tier hit through read-through', results, [
    { label: 'getOrSet / our get', ours: names.getOrSet, baseline: names.get, atLeast: 0.5 },
    {
      label: 'getOrSet / cache-manager wrap',
      ours: names.getOrSet,
      baseline: names.wrap,
      atLeast: 2,
    },
    {
      label: 'getOrSet / BentoCache getOrSet',
      ours: names.getOrSet,
      baseline: names.bento,
      atLeast: 3,
    },
    { label: '@Cached method / our get', ours: names.cached, baseline: names.get, atLeast: 0.4 },
    {
      label: 'our get / raw lru-cache (reference)',
      ours: names.get,
      baseline: names.lru,
      atLeast: 0,
    },
  ]);
  await bc.disconnect();
  await cacheManager.disconnect();
  await app.close();

  ok = (await largeTier()) && ok;
  ok = (await heapPerEntry()) && ok;
  ok = (await promiseCost()) && ok;
  return ok;
}

const LARGE = 100_000;

/**
 * A hit among 100,000 entries, read in a shuffled order: our memory tier against lru-cache. Two
 * references beside them: lru-cache's hit plus the deep copy that the copy mode hands every
 * reader (the floor of that mode), and our memory tier sharing its objects (`serialize: false`).
 */
async function largeTier(): Promise<boolean> {
  const keys = productKeys(LARGE);
  const lru = new LRUCache<string, object>({ max: LARGE });
  const store = new TieredStore({ tiers: [{ type: 'memory', maxEntries: LARGE }] });
  const shared = new TieredStore({
    tiers: [{ type: 'memory', maxEntries: LARGE, serialize: false }],
  });
  for (const [i, k] of keys.entries()) {
    lru.set(k, { ...PRODUCT, id: i });
    await store.set(k, { ...PRODUCT, id: i });
    await shared.set(k, { ...PRODUCT, id: i });
  }
  // A fixed shuffle (the same order for all), so that reads do not walk memory in key order.
  let seed = 1;
  const order = keys.map((k) => ({ k, r: (seed = (seed * 16807) % 2147483647) }));
  const shuffled = order.sort((a, b) => a.r - b.r).map(({ k }) => k);
  const names = {
    lru: 'raw lru-cache get (awaited)',
    copied: 'raw lru-cache get + a deep copy (reference)',
    ours: 'ours: TieredStore.get, memory tier, copies (default)',
    shared: 'ours: serialize: false (reference)',
  };
  const hint = nestedKeys(PRODUCT);
  const results = await compare(
    [
      { name: names.lru, run: hits(shuffled, (k) => lru.get(k)) },
      { name: names.copied, run: hits(shuffled, (k) => copyJsonTree(lru.get(k), hint)) },
      { name: names.ours, run: hits(shuffled, (k) => store.get(k)) },
      { name: names.shared, run: hits(shuffled, (k) => shared.get(k)) },
    ],
    { ops: OPS, rounds: ROUNDS },
  );
  const ok = report(`memory-tier hit among ${fmt(LARGE)} entries (shuffled reads)`, results, [
    { label: 'ours / raw lru-cache', ours: names.ours, baseline: names.lru, atLeast: 0.7 },
    {
      label: 'lru-cache + copy / raw lru-cache',
      ours: names.copied,
      baseline: names.lru,
      atLeast: 0,
    },
    { label: 'ours / lru-cache + copy', ours: names.ours, baseline: names.copied, atLeast: 0 },
    {
      label: 'serialize: false / raw lru-cache',
      ours: names.shared,
      baseline: names.lru,
      atLeast: 0,
    },
  ]);
  await store.disconnect();
  await shared.disconnect();
  return ok;
}

/** Heap bytes per entry at 100,000 entries, each measured in a fresh process. */
async function heapPerEntry(): Promise<boolean> {
  type Heap = { written: number; afterReads: number };
  const measure = async (mode: 'lru' | 'lru-copy' | 'ours') => {
    const child = fork(join(__dirname, 'heap-worker.ts'), [], {
      execArgv: ['--expose-gc', '-r', 'ts-node/register/transpile-only'],
      env: {
        ...process.env,
        TS_NODE_PROJECT: join(__dirname, '..', 'tsconfig.json'),
        BENCH_HEAP: mode,
        BENCH_HEAP_ENTRIES: String(LARGE),
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new Promise<Heap>((resolve, reject) => {
      child.once('message', (m) => resolve(m as Heap));
      child.once('exit', (code) => reject(new Error(`heap worker exited with ${code}`)));
    });
  };
  const lru = await measure('lru');
  const copies = await measure('lru-copy');
  const ours = await measure('ours');
  console.log(`\n## heap per entry, ${fmt(LARGE)} entries of one small object (fresh processes)`);
  console.log(`  ${''.padEnd(40)} written  every entry read once`);
  const row = (name: string, h: Heap) =>
    console.log(
      `  ${name.padEnd(40)} ${h.written.toFixed(0).padStart(6)} ${h.afterReads.toFixed(0).padStart(8)} bytes`,
    );
  row('raw lru-cache', lru);
  row('lru-cache of private copies (reference)', copies);
  row('ours: memory tier, copies (default)', ours);
  let pass = true;
  for (const state of ['written', 'afterReads'] as const) {
    const ratio = ours[state] / lru[state];
    pass = ratio <= 1.5 && pass;
    const label = state === 'written' ? 'written' : 'read once';
    console.log(
      `  ${ratio <= 1.5 ? 'PASS' : 'MISS'} ours / lru-cache, ${label}: ${ratio.toFixed(2)}× (target ≤ 1.5×)`,
    );
  }
  const floor = copies.afterReads / lru.afterReads;
  console.log(`  private copies / lru-cache, read once: ${floor.toFixed(2)}× (reference)`);
  return pass;
}

/** Fresh processes measuring the host app's promises, each before and after the module is used. */
const PROMISE_PROCESSES = 3;

/**
 * The host app's awaited `.then` before and after using the module, in fresh processes (see
 * `promise-cost-worker.ts`). A ratio is after / before within one process; the figure is the
 * median of the processes' ratios (a process sometimes runs the loop at half speed from start to
 * end, whatever it does: both of its figures move together).
 */
async function promiseCost(): Promise<boolean> {
  type Figures = { before: number; after: number; withAls: number };
  const runs: Figures[] = [];
  for (let i = 0; i < PROMISE_PROCESSES; i++) {
    const child = fork(join(__dirname, 'promise-cost-worker.ts'), [], {
      execArgv: ['-r', 'ts-node/register/transpile-only'],
      env: { ...process.env, TS_NODE_PROJECT: join(__dirname, '..', 'tsconfig.json') },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    runs.push(
      await new Promise<Figures>((resolve, reject) => {
        child.once('message', (m) => resolve(m as Figures));
        child.once('exit', (code) => reject(new Error(`promise-cost worker exited with ${code}`)));
      }),
    );
  }
  const after = stats(runs.map((r) => r.after / r.before)).median;
  const control = stats(runs.map((r) => r.withAls / r.before)).median;
  const pass = after >= 0.95;
  console.log(
    `\n## the host app's own promises (awaited \`.then\`, ${PROMISE_PROCESSES} fresh processes, median of 7 rounds each)`,
  );
  for (const r of runs)
    console.log(
      `  before ${fmt(r.before)} ops/s, after getOrSet (misses, joins, nested, hits) ${fmt(r.after)}, after one AsyncLocalStorage.run() ${fmt(r.withAls)}`,
    );
  console.log(
    `  ${pass ? 'PASS' : 'MISS'} after / before: ${after.toFixed(2)}× (target ≥ 0.95×); the control: ${control.toFixed(2)}×`,
  );
  return pass;
}
