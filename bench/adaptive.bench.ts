import 'reflect-metadata';
import { Injectable, Module, NotFoundException } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  Cached,
  TieredCache,
  TieredCacheModule,
  cacheEntryContext,
  type CacheEntryContext,
} from '../lib';
import { PRODUCT, productKeys } from './fixtures';
import { compare, load, report } from './measure';

/**
 * What adaptive entries and negative caching cost a hit (issue 18): a `getOrSet` hit and a
 * `@Cached` method hit whose call has `cacheEmpty` (with a "not found" error class) and whose
 * factory sets its entry's TTL and tags, against the same hits with plain options; and a hit on
 * a cached empty result against a hit on a value. Memory tier, one run, ratios.
 */
const KEYS = productKeys(1000);
const IDS = KEYS.map((_, i) => i);
const TTL = 10 * 60_000;
const OPS = 200_000;
const EMPTY = { ttl: TTL, errors: [NotFoundException] };

@Injectable()
class Catalog {
  calls = 0;

  @Cached({ ttl: TTL })
  async plain(id: number): Promise<typeof PRODUCT> {
    this.calls++;
    return { ...PRODUCT, id };
  }

  @Cached({ ttl: TTL, cacheEmpty: EMPTY })
  async adaptive(id: number): Promise<typeof PRODUCT> {
    const entry = cacheEntryContext();
    this.calls++;
    entry.setTtl(TTL / 2);
    entry.setTags([`product:${id}`]);
    return { ...PRODUCT, id };
  }
}

@Module({
  imports: [TieredCacheModule.forRoot({ tiers: [{ type: 'memory', ttl: 0 }], logErrors: false })],
  providers: [Catalog],
})
class AdaptiveModule {}

/** `ops` sequential awaited calls of `call` over `keys` round-robin; `check` each result. */
function loop<K>(
  keys: readonly K[],
  call: (key: K) => Promise<unknown>,
  check: (result: unknown) => boolean = (r) => r !== undefined,
): (ops: number) => Promise<void> {
  return async (ops) => {
    for (let i = 0; i < ops; i++) {
      if (!check(await call(keys[i % keys.length]))) throw new Error('benchmark miss');
    }
  };
}

export async function adaptive(): Promise<boolean> {
  console.log(`\n# adaptive entries and negative caching on a hit; ${load()}`);
  const app = await NestFactory.createApplicationContext(AdaptiveModule, { logger: false });
  const cache = app.get(TieredCache);
  const catalog = app.get(Catalog);
  const plainOptions = { ttl: TTL };
  const adaptiveOptions = { ttl: TTL, cacheEmpty: EMPTY };
  const plainFactory = () => PRODUCT;
  const adaptiveFactory = (entry: CacheEntryContext<typeof PRODUCT>) => {
    entry.setTtl(TTL / 2);
    entry.setTags(['products']);
    return PRODUCT;
  };
  const emptyFactory = (): undefined => undefined;
  for (const [i, k] of KEYS.entries()) {
    await cache.getOrSet(`p:${k}`, plainFactory, plainOptions);
    await cache.getOrSet(`a:${k}`, adaptiveFactory, adaptiveOptions);
    await cache.getOrSet(`e:${k}`, emptyFactory, adaptiveOptions);
    await catalog.plain(i);
    await catalog.adaptive(i);
  }
  const calls = catalog.calls;
  const names = {
    plain: 'ours: getOrSet hit, plain options',
    adaptive: 'ours: getOrSet hit, cacheEmpty + adaptive factory',
    empty: 'ours: getOrSet hit on a cached empty result',
    cachedPlain: 'ours: @Cached method hit, plain',
    cachedAdaptive: 'ours: @Cached method hit, cacheEmpty + cacheEntryContext()',
  };
  const key = (prefix: string) => KEYS.map((k) => `${prefix}:${k}`);
  const results = await compare(
    [
      {
        name: names.plain,
        run: loop(key('p'), (k) => cache.getOrSet(k, plainFactory, plainOptions)),
      },
      {
        name: names.adaptive,
        run: loop(key('a'), (k) => cache.getOrSet(k, adaptiveFactory, adaptiveOptions)),
      },
      {
        name: names.empty,
        run: loop(
          key('e'),
          (k) => cache.getOrSet(k, emptyFactory, adaptiveOptions),
          (r) => r === undefined,
        ),
      },
      { name: names.cachedPlain, run: loop(IDS, (id) => catalog.plain(id)) },
      { name: names.cachedAdaptive, run: loop(IDS, (id) => catalog.adaptive(id)) },
    ],
    { ops: OPS, rounds: 9 },
  );
  if (catalog.calls !== calls) throw new Error('adaptive bench: a method ran on a hit');
  const ok = report('hits with adaptive options against plain ones (1.00 = no cost)', results, [
    { label: 'getOrSet adaptive / plain', ours: names.adaptive, baseline: names.plain, atLeast: 0 },
    {
      label: 'getOrSet empty hit / value hit',
      ours: names.empty,
      baseline: names.plain,
      atLeast: 0,
    },
    {
      label: '@Cached adaptive / plain',
      ours: names.cachedAdaptive,
      baseline: names.cachedPlain,
      atLeast: 0,
    },
  ]);
  await app.close();
  return ok;
}
