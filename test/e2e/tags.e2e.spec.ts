import 'reflect-metadata';
import {
  BadRequestException,
  Controller,
  Get,
  HttpCode,
  type INestApplication,
  Injectable,
  Param,
  Post,
} from '@nestjs/common';
import { CACHE_MANAGER, type Cache } from '@nestjs/cache-manager';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import {
  CacheEvict,
  Cached,
  type CacheableRequest,
  InvalidOptionError,
  TieredCache,
  TieredCacheModule,
  type TierOptions,
} from '../../lib';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import { eventually } from '../support/eventually';

/**
 * Tags through the decorators, on real servers (memory → memcached → Cassandra): `@Cached({ tags })`
 * on provider methods and on handlers (Express and Fastify), `TieredCache.invalidateTags()`,
 * `@CacheEvict({ tags })` after success only, in both modes, and bad tags.
 */

const servers = testServers();
const keyspace = uniqueName('tagse2e').toLowerCase();
const tiers: TierOptions[] = [
  { type: 'memory' },
  { type: 'memcached', servers: servers.memcached },
  { type: 'cassandra', ...servers.cassandra, keyspace },
];
dropKeyspaceAfterAll(keyspace);

/** Calls per name: of a method, or of a method with one argument. */
class Calls {
  private readonly counts = new Map<string, number>();
  /** Counts a call of `name`; its number, from 1. */
  next(name: string): number {
    const n = this.of(name) + 1;
    this.counts.set(name, n);
    return n;
  }
  of(name: string): number {
    return this.counts.get(name) ?? 0;
  }

  /** What the product handler waits for before it answers (a refresh held while a test looks). */
  gate: Promise<void> = Promise.resolve();
  /** Holds the product handler until the returned function is called. */
  hold(): () => void {
    let open!: () => void;
    this.gate = new Promise((resolve) => (open = resolve));
    return open;
  }
}

/** The `Calls` of the app being built (each app gets its own, set before it is compiled). */
let calls = new Calls();

@Injectable()
class CatalogService {
  @Cached({
    key: (id: number) => `product:${id}`,
    tags: (id: number) => [`product:${id}`, 'products'],
  })
  async product(id: number): Promise<{ id: number; n: number }> {
    return { id, n: calls.next(`product ${id}`) };
  }

  @Cached({ key: 'brand:1', tags: ['brands'] })
  async brand(): Promise<{ n: number }> {
    return { n: calls.next('brand') };
  }

  @Cached({ key: 'untagged' })
  async untagged(): Promise<{ n: number }> {
    return { n: calls.next('untagged') };
  }

  @CacheEvict({ tags: (id: number) => [`product:${id}`] })
  async update(_id: number, fail = false): Promise<void> {
    calls.next('update');
    if (fail) throw new Error('update failed');
  }

  @Cached({ key: (id: number) => `bad:${id}`, tags: () => 'product' as never })
  async badTags(id: number): Promise<number> {
    calls.next('badTags');
    return id;
  }

  @CacheEvict({ keys: 'product:1', tags: () => undefined as never })
  async badEvict(): Promise<void> {
    calls.next('badEvict');
  }
}

@Controller('shop')
class ShopController {
  @Get('products')
  @Cached({ tags: ['products'] })
  list() {
    return { list: calls.next('list') };
  }

  @Get('brands')
  @Cached({ tags: ['brands'] })
  brands() {
    return { brands: calls.next('brands') };
  }

  @Get('plain')
  @Cached()
  plain() {
    return { plain: calls.next('plain') };
  }

  @Get('products/:id')
  @Cached({
    grace: 60_000,
    tags: (request: CacheableRequest) => [`product:${request.params.id}`],
  })
  async one(@Param('id') id: string) {
    const n = calls.next(`one ${id}`);
    await calls.gate;
    return { id, n };
  }

  @Post('products/:id')
  @HttpCode(204)
  @CacheEvict({ tags: (request: CacheableRequest) => [`product:${request.params.id}`] })
  touch() {
    calls.next('touch');
  }

  @Post('products/:id/expire')
  @HttpCode(204)
  @CacheEvict({
    tags: (request: CacheableRequest) => [`product:${request.params.id}`],
    mode: 'expire',
  })
  expire() {
    calls.next('expire');
  }

  @Post('products/:id/fail')
  @CacheEvict({ tags: (request: CacheableRequest) => [`product:${request.params.id}`] })
  fail() {
    calls.next('fail');
    throw new BadRequestException('refused');
  }

  @Get('bad')
  @Cached({ tags: () => ({ tags: ['x'] }) as never })
  bad() {
    return { bad: calls.next('bad') };
  }
}

type Platform = 'express' | 'fastify';

describe('tags through @Cached and @CacheEvict (e2e, real servers)', () => {
  const apps: INestApplication[] = [];
  let namespace: string;

  /** An app over the full chain in this test's namespace, listening on a free port. */
  async function start(platform: Platform = 'express') {
    calls = new Calls();
    const moduleRef = await Test.createTestingModule({
      imports: [TieredCacheModule.forRoot({ namespace, ttl: 60_000, tiers })],
      controllers: [ShopController],
      providers: [CatalogService],
    }).compile();
    const app =
      platform === 'express'
        ? moduleRef.createNestApplication({ logger: false })
        : moduleRef.createNestApplication(new FastifyAdapter(), { logger: false });
    apps.push(app);
    await app.listen(0, '127.0.0.1');
    const url = await app.getUrl();
    return {
      app,
      http: () => request(url),
      service: app.get(CatalogService),
      cache: app.get(TieredCache),
    };
  }

  beforeEach(() => {
    namespace = uniqueName('tagse2e');
  });
  afterEach(async () => void (await Promise.all(apps.splice(0).map((a) => a.close()))));

  describe('provider methods', () => {
    it('invalidateTags: tagged entries are computed again; other tags and untagged entries stay cached', async () => {
      const { service, cache } = await start();
      for (let round = 0; round < 2; round++) {
        expect(await service.product(1)).toEqual({ id: 1, n: 1 });
        expect(await service.product(2)).toEqual({ id: 2, n: 1 });
        expect(await service.brand()).toEqual({ n: 1 });
        expect(await service.untagged()).toEqual({ n: 1 });
      }

      await cache.invalidateTags(['product:1']);
      expect(await service.product(1)).toEqual({ id: 1, n: 2 });
      expect(await service.product(2)).toEqual({ id: 2, n: 1 });
      expect(await service.brand()).toEqual({ n: 1 });
      expect(await service.untagged()).toEqual({ n: 1 });

      // A tag every product entry has.
      await cache.invalidateTags(['products']);
      expect(await service.product(1)).toEqual({ id: 1, n: 3 });
      expect(await service.product(2)).toEqual({ id: 2, n: 2 });
      expect(await service.brand()).toEqual({ n: 1 });
      expect(await service.untagged()).toEqual({ n: 1 });
    });

    it('@CacheEvict({ tags }) invalidates after the method succeeded, never when it throws', async () => {
      const { service } = await start();
      await service.product(1);
      await service.product(2);
      await expect(service.update(1, true)).rejects.toThrow('update failed');
      expect(await service.product(1)).toEqual({ id: 1, n: 1 });

      await service.update(1);
      expect(calls.of('update')).toBe(2);
      expect(await service.product(1)).toEqual({ id: 1, n: 2 });
      expect(await service.product(2)).toEqual({ id: 2, n: 1 });
    });

    it('CACHE_MANAGER.get, its Keyv store and another instance read nothing for an invalidated entry', async () => {
      const { app, service, cache } = await start();
      const manager = app.get<Cache>(CACHE_MANAGER);
      const keyv = manager.stores[0];
      await service.product(1);
      await service.brand();
      await cache.set('set:1', { set: 1 }, { ttl: 60_000, tags: ['product:1'] });
      expect(await manager.get('product:1')).toEqual({ id: 1, n: 1 });
      expect(await keyv.get('set:1')).toEqual({ set: 1 });

      await cache.invalidateTags(['product:1']);
      for (const key of ['product:1', 'set:1']) {
        expect(await manager.get(key)).toBeUndefined();
        expect(await keyv.get(key)).toBeUndefined();
        expect(await cache.get(key)).toBeUndefined();
      }
      expect(await manager.get('brand:1')).toEqual({ n: 1 });

      // An instance that never saw the invalidation reads the tag times from the shared tiers.
      const other = await start();
      expect(await other.cache.get('product:1')).toBeUndefined();
      expect(await other.cache.get('set:1')).toBeUndefined();
      expect(await other.cache.get('brand:1')).toEqual({ n: 1 });
    });

    it('a tags function returning anything but a list rejects the call, naming the option; nothing is cached', async () => {
      const { service, cache } = await start();
      for (let i = 0; i < 2; i++) {
        const call = service.badTags(1);
        await expect(call).rejects.toThrow(InvalidOptionError);
        await expect(call).rejects.toThrow(
          '@Cached().tags(): must be a list of strings, got string',
        );
      }
      expect(calls.of('badTags')).toBe(0);
      expect(await cache.get('bad:1')).toBeUndefined();

      // @CacheEvict: the method has run, nothing is evicted (its keys neither).
      await service.product(1);
      await expect(service.badEvict()).rejects.toThrow(
        '@CacheEvict().tags(): must be a list of strings, got undefined',
      );
      expect(calls.of('badEvict')).toBe(1);
      expect(await service.product(1)).toEqual({ id: 1, n: 1 });
    });

    it('bad tags options fail where the class is declared, naming the option', () => {
      const cases: Array<[() => unknown, string]> = [
        [
          () => {
            class Decorated {
              @Cached({ tags: 'x' as never })
              find() {}
            }
            return Decorated;
          },
          '@Cached().tags: must be a list of strings or a function, got string',
        ],
        [
          () => {
            class Decorated {
              @Cached({ tags: [''] })
              find() {}
            }
            return Decorated;
          },
          '@Cached().tags[0]: must not be empty',
        ],
        [
          () => {
            class Decorated {
              @CacheEvict({})
              update() {}
            }
            return Decorated;
          },
          '@CacheEvict(): needs keys, tags or both, got neither',
        ],
        [
          () => {
            class Decorated {
              @CacheEvict({ tags: ['products'], mode: 'soft' as never })
              update() {}
            }
            return Decorated;
          },
          `@CacheEvict().mode: must be 'delete' or 'expire', got "soft"`,
        ],
      ];
      for (const [declare, message] of cases) {
        expect(declare).toThrow(InvalidOptionError);
        expect(declare).toThrow(message);
      }
    });
  });

  describe.each<Platform>(['express', 'fastify'])('controller handlers (%s)', (platform) => {
    it('@Cached({ tags: [...] }): invalidateTags recomputes the tagged handler alone', async () => {
      const { http, cache } = await start(platform);
      for (const path of ['/shop/products', '/shop/brands', '/shop/plain']) {
        const first = await http().get(path).expect(200);
        const second = await http().get(path).expect(200);
        expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
      }
      await cache.invalidateTags(['products']);
      const again = await http().get('/shop/products').expect(200, { list: 2 });
      expect(again.headers['x-cache']).toBe('MISS');
      await http().get('/shop/brands').expect(200, { brands: 1 });
      await http().get('/shop/plain').expect(200, { plain: 1 });
      expect([calls.of('list'), calls.of('brands'), calls.of('plain')]).toEqual([2, 1, 1]);
    });

    it('a tags function of the request: one product is invalidated, not the others', async () => {
      const { http, cache } = await start(platform);
      for (let round = 0; round < 2; round++) {
        await http().get('/shop/products/1').expect(200, { id: '1', n: 1 });
        await http().get('/shop/products/2').expect(200, { id: '2', n: 1 });
      }
      await cache.invalidateTags(['product:1']);
      const one = await http().get('/shop/products/1').expect(200, { id: '1', n: 2 });
      expect(one.headers['x-cache']).toBe('MISS');
      const two = await http().get('/shop/products/2').expect(200, { id: '2', n: 1 });
      expect(two.headers['x-cache']).toBe('HIT');
    });

    it('@CacheEvict({ tags }) after success only: a handler that throws leaves the entries cached', async () => {
      const { http } = await start(platform);
      await http().get('/shop/products/1').expect(200, { id: '1', n: 1 });
      await http().post('/shop/products/1/fail').expect(400);
      expect(calls.of('fail')).toBe(1);
      const kept = await http().get('/shop/products/1').expect(200, { id: '1', n: 1 });
      expect(kept.headers['x-cache']).toBe('HIT');

      await http().post('/shop/products/1').expect(204);
      const fresh = await http().get('/shop/products/1').expect(200, { id: '1', n: 2 });
      expect(fresh.headers['x-cache']).toBe('MISS');
    });

    it("@CacheEvict({ tags, mode: 'expire' }) with grace: STALE at once, one refresh", async () => {
      const { http } = await start(platform);
      await http().get('/shop/products/3').expect(200, { id: '3', n: 1 });
      await http().get('/shop/products/4').expect(200, { id: '4', n: 1 });
      await http().post('/shop/products/3/expire').expect(204);

      // The refresh is held until every request of the burst has been answered.
      const open = calls.hold();
      const burst = await Promise.all(
        Array.from({ length: 20 }, () => http().get('/shop/products/3').expect(200)),
      );
      for (const reply of burst) {
        expect(reply.headers['x-cache']).toBe('STALE');
        expect(reply.body).toEqual({ id: '3', n: 1 });
      }
      open();
      expect(
        await eventually(async () => {
          const reply = await http().get('/shop/products/3');
          return reply.headers['x-cache'] === 'HIT' && reply.body.n === 2;
        }, 10_000),
      ).toBe(true);
      expect(calls.of('one 3')).toBe(2);
      const other = await http().get('/shop/products/4').expect(200, { id: '4', n: 1 });
      expect(other.headers['x-cache']).toBe('HIT');
    });

    it('a tags function returning anything but a list: the request fails, the handler is not called', async () => {
      const { http } = await start(platform);
      await http().get('/shop/bad').expect(500);
      await http().get('/shop/bad').expect(500);
      expect(calls.of('bad')).toBe(0);
    });
  });
});
