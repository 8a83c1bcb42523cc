import 'reflect-metadata';
import { type INestApplication } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { CACHE_MANAGER } from '@nestjs/cache-manager';
import { Test } from '@nestjs/testing';
import type { Cache } from 'cache-manager';
import request from 'supertest';
import {
  TieredCache,
  TieredCacheModule,
  TieredStore,
  type TieredCacheModuleOptions,
  type TierOptions,
} from '../../lib';
import { testServers, uniqueName } from '../harness/env';
import { ManualClock } from '../support/manual-clock';
import { LegacyController, Origin, ProductsController, ProductsService } from './fixtures';

const servers = testServers();
const keyspace = uniqueName('e2e').toLowerCase();
const fullChain = (): TierOptions[] => [
  { type: 'memory' },
  { type: 'memcached', servers: servers.memcached },
  { type: 'cassandra', ...servers.cassandra, keyspace },
];

describe('TieredCacheModule (e2e, real servers)', () => {
  const apps: INestApplication[] = [];
  let clock: ManualClock;
  let namespace: string;

  async function createApp(
    options: Partial<TieredCacheModuleOptions> = {},
    build: 'forRoot' | 'forRootAsync' = 'forRoot',
  ): Promise<{ app: INestApplication; origin: Origin }> {
    const origin = new Origin();
    const moduleOptions: TieredCacheModuleOptions = {
      namespace,
      clock,
      tiers: fullChain(),
      ...options,
    };
    const cacheModule =
      build === 'forRoot'
        ? TieredCacheModule.forRoot(moduleOptions)
        : TieredCacheModule.forRootAsync({
            imports: [
              ConfigModule.forRoot({
                ignoreEnvFile: true,
                load: [() => ({ cacheNamespace: namespace })],
              }),
            ],
            inject: [ConfigService],
            useFactory: (config: ConfigService) => ({
              ...moduleOptions,
              namespace: config.getOrThrow<string>('cacheNamespace'),
            }),
          });
    const moduleRef = await Test.createTestingModule({
      imports: [cacheModule],
      controllers: [ProductsController, LegacyController],
      providers: [ProductsService, { provide: Origin, useValue: origin }],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    apps.push(app);
    return { app, origin };
  }

  beforeEach(() => {
    clock = new ManualClock();
    namespace = uniqueName('e2e');
  });

  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });

  describe('module', () => {
    it.each(['forRoot', 'forRootAsync'] as const)(
      '%s: CACHE_MANAGER and TieredCache share one store',
      async (build) => {
        const { app } = await createApp({}, build);
        const cacheManager = app.get<Cache>(CACHE_MANAGER);
        const tiered = app.get(TieredCache);
        expect(app.get(TieredStore).opts.namespace).toBe(namespace);
        await cacheManager.set('shared', { at: new Date(7), tags: new Set(['a']) }, 60_000);
        expect(await tiered.get('shared')).toEqual({ at: new Date(7), tags: new Set(['a']) });
        await tiered.set('other', 42n);
        expect(await cacheManager.get('other')).toBe(42n);
        await cacheManager.del('shared');
        expect(await tiered.get('shared')).toBeUndefined();
        expect(tiered.stats().map((t) => t.kind)).toEqual(['memory', 'memcached', 'cassandra']);
      },
    );

    it('fails at bootstrap with a message naming the bad field', async () => {
      await expect(
        createApp({ tiers: [{ type: 'memory' }, { type: 'memcached', servers: ['localhost'] }] }),
      ).rejects.toThrow('tiers[1].servers[0]: "localhost" has no port');
      await expect(createApp({ namespace: 'bad namespace' })).rejects.toThrow(
        /^namespace: "bad namespace" must be/,
      );
    });

    it('starts with an unreachable tier (it is marked down), unless failFast', async () => {
      const dead: TierOptions[] = [
        { type: 'memory' },
        { type: 'memcached', servers: ['127.0.0.1:9'], timeout: 200 },
      ];
      const { app } = await createApp({ tiers: dead });
      expect(app.get(TieredCache).stats()[1].errors).toBe(1);
      await request(app.getHttpServer()).get('/products').expect(200);
      await expect(createApp({ tiers: dead, failFast: true })).rejects.toThrow(/127\.0\.0\.1:9/);
    });

    it('two apps sharing the servers see each other writes and deletes', async () => {
      const [{ app: a }, { app: b }] = [await createApp(), await createApp()];
      await a.get(TieredCache).set('k', 'from a', 60_000);
      expect(await b.get(TieredCache).get('k')).toBe('from a');
      await b.get(TieredCache).del('k');
      clock.advance(5001); // a's memory copy may live up to its cap
      expect(await a.get(TieredCache).get('k')).toBeUndefined();
    });

    it("keeps @nestjs/cache-manager's CacheInterceptor, @CacheKey and @CacheTTL working", async () => {
      const { app, origin } = await createApp();
      const http = request(app.getHttpServer());
      await http.get('/legacy/all').expect(200, { legacy: true });
      await http.get('/legacy/all').expect(200, { legacy: true });
      expect(origin.calls).toBe(1);
      expect(await app.get(TieredCache).get('legacy-all')).toEqual({ legacy: true });
    });
  });

  describe('@Cached on a controller handler', () => {
    it('serves the second request from the cache, X-Cache MISS then HIT', async () => {
      const { app, origin } = await createApp();
      const http = request(app.getHttpServer());
      const first = await http.get('/products?b=2&a=1').expect(200);
      expect(first.headers['x-cache']).toBe('MISS');
      const second = await http.get('/products?a=1&b=2').expect(200); // same query, other order
      expect(second.headers['x-cache']).toBe('HIT');
      expect(second.body).toEqual({ query: { a: '1', b: '2' } });
      expect(origin.calls).toBe(1);
      await http.get('/products?a=2&b=2').expect(200);
      expect(origin.calls).toBe(2);
    });

    it('respects the TTL', async () => {
      const { app, origin } = await createApp();
      const http = request(app.getHttpServer());
      await http.get('/products').expect(200);
      clock.advance(9_999);
      expect((await http.get('/products')).headers['x-cache']).toBe('HIT');
      clock.advance(1);
      expect((await http.get('/products')).headers['x-cache']).toBe('MISS');
      expect(origin.calls).toBe(2);
    });

    it('adds vary headers to the key', async () => {
      const { app, origin } = await createApp();
      const http = request(app.getHttpServer());
      await http.get('/products/lang').set('Accept-Language', 'en').expect(200);
      await http.get('/products/lang').set('Accept-Language', 'fr').expect(200);
      await http.get('/products/lang').set('Accept-Language', 'en').expect(200);
      expect(origin.calls).toBe(2);
    });

    it('respects condition', async () => {
      const { app, origin } = await createApp();
      const http = request(app.getHttpServer());
      await http.get('/products/odd?n=2');
      await http.get('/products/odd?n=2');
      await http.get('/products/odd?n=3');
      await http.get('/products/odd?n=3');
      expect(origin.calls).toBe(3);
    });

    it('never caches requests with Authorization or Cookie', async () => {
      const { app, origin } = await createApp();
      const http = request(app.getHttpServer());
      await http.get('/products?x=1').set('Authorization', 'Bearer alice').expect(200);
      const second = await http.get('/products?x=1').set('Cookie', 'sid=bob').expect(200);
      expect(second.headers['x-cache']).toBe('BYPASS');
      await http.get('/products?x=1').expect(200);
      expect((await http.get('/products?x=1')).headers['x-cache']).toBe('HIT');
      expect(origin.calls).toBe(3);
    });

    it('never caches non-2xx responses or responses that set a cookie', async () => {
      const { app, origin } = await createApp();
      const http = request(app.getHttpServer());
      await http.get('/products/missing').expect(404);
      await http.get('/products/missing').expect(404);
      await http.get('/products/session').expect(200);
      await http.get('/products/session').expect(200);
      expect(origin.calls).toBe(4);
    });

    it('answers 50 concurrent requests for a cold key with one origin call', async () => {
      const { app, origin } = await createApp();
      const server = app.getHttpServer();
      const responses = await Promise.all(
        Array.from({ length: 50 }, () => request(server).get('/products?hot=1')),
      );
      expect(responses.every((r) => r.status === 200 && r.body.query.hot === '1')).toBe(true);
      expect(origin.calls).toBe(1);
    });

    it('@CacheEvict on a mutation evicts from every tier', async () => {
      const { app, origin } = await createApp();
      const http = request(app.getHttpServer());
      await http.get('/products/3').expect(200, { id: 3, price: 30 });
      expect(origin.calls).toBe(1);
      await http.post('/products/3').expect(204);
      // Not in memcached nor Cassandra any more: a store over those two alone misses it.
      const remote = new TieredStore({ namespace, clock, tiers: fullChain().slice(1) });
      expect(await remote.get('product:3')).toBeUndefined();
      await remote.disconnect();
      await http.get('/products/3').expect(200);
      expect(origin.calls).toBe(2);
    });
  });

  describe('@Cached on a service method', () => {
    it('caches by arguments, whatever the key order of object arguments', async () => {
      const { app, origin } = await createApp();
      const products = app.get(ProductsService);
      const first = await products.find({ color: 'red', size: 2 });
      const again = await products.find({ size: 2, color: 'red' });
      expect(again).toEqual(first);
      expect(again.at).toBeInstanceOf(Date);
      expect(origin.calls).toBe(1);
      await products.find({ color: 'blue', size: 2 });
      expect(origin.calls).toBe(2);
    });

    it('respects condition and TTL, and evicts only after success', async () => {
      const { app, origin } = await createApp();
      const products = app.get(ProductsService);
      await products.findOne(-1);
      await products.findOne(-1); // null is not cached (condition)
      expect(origin.calls).toBe(2);
      await products.findOne(5);
      await products.findOne(5);
      expect(origin.calls).toBe(3);
      await expect(products.update(5, true)).rejects.toThrow('update failed');
      await products.findOne(5);
      expect(origin.calls).toBe(3); // a failed update evicts nothing
      await products.update(5);
      await products.findOne(5);
      expect(origin.calls).toBe(4);
    });

    it('shares one origin call between 100 concurrent callers', async () => {
      const { app, origin } = await createApp();
      const products = app.get(ProductsService);
      const results = await Promise.all(Array.from({ length: 100 }, () => products.findOne(9)));
      expect(results.every((r) => r?.price === 90)).toBe(true);
      expect(origin.calls).toBe(1);
    });
  });

  it('works with the Fastify adapter', async () => {
    const origin = new Origin();
    const moduleRef = await Test.createTestingModule({
      imports: [TieredCacheModule.forRoot({ namespace, clock, tiers: fullChain() })],
      controllers: [ProductsController],
      providers: [ProductsService, { provide: Origin, useValue: origin }],
    }).compile();
    const app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), {
      logger: false,
    });
    apps.push(app);
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
    const first = await request(app.getHttpServer()).get('/products?z=1&y=2').expect(200);
    const second = await request(app.getHttpServer()).get('/products?y=2&z=1').expect(200);
    expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
    await request(app.getHttpServer()).get('/products/session').expect(200);
    await request(app.getHttpServer()).get('/products/session').expect(200);
    expect(origin.calls).toBe(3);
  });
});
