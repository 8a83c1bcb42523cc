import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createCache } from 'cache-manager';
import { LRUCache } from 'lru-cache';
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { Cached, TieredCache, TieredCacheModule } from '../lib';
import { PRODUCT, productKeys } from './fixtures';
import { compare, fmt, load, report } from './measure';

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

  ok = (await promiseCost()) && ok;
  return ok;
}

/** The host app's awaited `.then` before and after using the module, in a fresh process. */
async function promiseCost(): Promise<boolean> {
  const child = fork(join(__dirname, 'promise-cost-worker.ts'), [], {
    execArgv: ['-r', 'ts-node/register/transpile-only'],
    env: { ...process.env, TS_NODE_PROJECT: join(__dirname, '..', 'tsconfig.json') },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const figures = await new Promise<{ before: number; after: number; withAls: number }>(
    (resolve, reject) => {
      child.once('message', (m) => resolve(m as never));
      child.once('exit', (code) => reject(new Error(`promise-cost worker exited with ${code}`)));
    },
  );
  const after = figures.after / figures.before;
  const pass = after >= 0.95;
  console.log("\n## the host app's own promises (awaited `.then`, fresh process, median of 7)");
  console.log(`  before the module is used          ${fmt(figures.before).padStart(12)} ops/s`);
  console.log(`  after getOrSet (misses, joins, hits) ${fmt(figures.after).padStart(10)} ops/s`);
  console.log(
    `  control: after one AsyncLocalStorage.run() ${fmt(figures.withAls).padStart(10)} ops/s`,
  );
  console.log(
    `  ${pass ? 'PASS' : 'MISS'} after / before: ${after.toFixed(2)}× (target ≥ 0.95×); the control: ${(figures.withAls / figures.before).toFixed(2)}×`,
  );
  return pass;
}
