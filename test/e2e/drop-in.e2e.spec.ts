import 'reflect-metadata';
import {
  type DynamicModule,
  Global,
  type INestApplication,
  Injectable,
  Module,
  type Provider,
  type Type,
} from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { CACHE_MANAGER, Cache, CacheInterceptor } from '@nestjs/cache-manager';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import {
  TieredCache,
  TieredCacheModule,
  TieredStore,
  type TieredCacheModuleOptions,
  type TieredCacheOptionsFactory,
  type TierOptions,
} from '../../lib';
import { testServers, uniqueName } from '../harness/env';
import { eventually } from '../support/eventually';
import {
  AppConfigModule,
  AppConfigService,
  BirdsController,
  CacheConfigService,
  CacheSettings,
  CatsController,
  CatsService,
  DogsController,
  FeatureModule,
  FishController,
} from './drop-in.fixtures';
import { Origin } from './fixtures';

const servers = testServers();
const keyspace = uniqueName('dropin').toLowerCase();
const fullChain = (): TierOptions[] => [
  { type: 'memory' },
  { type: 'memcached', servers: servers.memcached },
  { type: 'cassandra', ...servers.cassandra, keyspace },
];

/** One origin per app (every app builds its own instance), visible to every module. */
@Global()
@Module({ providers: [Origin], exports: [Origin] })
class OriginModule {}

/** Slack for expiry checks: the clock may be read a little before or after the request. */
const SLACK_MS = 1_000;

describe('an app written for @nestjs/cache-manager, CacheModule renamed TieredCacheModule (e2e, real servers)', () => {
  const apps: INestApplication[] = [];
  let namespace: string;

  /** An app importing `cacheModule` (plus `imports`), with these controllers and providers. */
  async function start(
    cacheModule: DynamicModule,
    controllers: Type[] = [],
    { imports = [], providers = [] }: { imports?: Type[]; providers?: Provider[] } = {},
  ) {
    const moduleRef = await Test.createTestingModule({
      imports: [OriginModule, cacheModule, ...imports],
      controllers,
      providers,
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    apps.push(app);
    await app.init();
    return {
      app,
      http: request(app.getHttpServer()),
      origin: app.get(Origin),
      cache: app.get<Cache>(CACHE_MANAGER),
    };
  }

  /** Asserts that `key` expires `ttl` ms after `since` (within {@link SLACK_MS}). */
  async function expectExpiry(cache: Cache, key: string, ttl: number, since: number) {
    const expires = await cache.ttl(key);
    expect(expires).toBeGreaterThanOrEqual(since + ttl - SLACK_MS);
    expect(expires).toBeLessThanOrEqual(Date.now() + ttl + SLACK_MS);
  }

  /**
   * The app runs on the options that its registration supplied: their namespace and tiers, and
   * their `ttl` for a `set` that gives none; and `/cats/:id` is served from the cache.
   */
  async function expectOptionsInUse(
    started: Awaited<ReturnType<typeof start>>,
    options: { ttl: number; tiers: string[] },
  ) {
    const { app, http, origin, cache } = started;
    expect(app.get(TieredStore).opts.namespace).toBe(namespace);
    expect(
      app
        .get(TieredCache)
        .stats()
        .map((t) => t.kind),
    ).toEqual(options.tiers);
    const since = Date.now();
    await cache.set('default-ttl', 1);
    await expectExpiry(cache, 'default-ttl', options.ttl, since);
    await http.get('/cats/7').expect(200, { id: '7', name: 'cat 7' });
    await http.get('/cats/7').expect(200, { id: '7', name: 'cat 7' });
    expect(origin.calls).toBe(1);
  }

  const settings = (ttl = 40_000) => new CacheSettings(namespace, ttl, fullChain());
  const fullChainKinds = ['memory', 'memcached', 'cassandra'];

  beforeEach(() => {
    namespace = uniqueName('dropin');
  });

  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });

  describe('register()', () => {
    it('without options: one memory tier, as CacheModule.register() has an in-memory store', async () => {
      const { app, http, origin } = await start(TieredCacheModule.register(), [CatsController]);
      await http.get('/cats/1').expect(200, { id: '1', name: 'cat 1' });
      await http.get('/cats/1').expect(200, { id: '1', name: 'cat 1' });
      expect(origin.calls).toBe(1);
      expect(
        app
          .get(TieredCache)
          .stats()
          .map((t) => t.kind),
      ).toEqual(['memory']);
    });

    it('with tier options: @Inject(CACHE_MANAGER) get/set, and the ttl option for a set without one', async () => {
      const started = await start(
        TieredCacheModule.register({ namespace, ttl: 45_000, tiers: fullChain() }),
        [CatsController],
      );
      await expectOptionsInUse(started, { ttl: 45_000, tiers: fullChainKinds });
      // The entry is the store's own: TieredCache reads it under the same key.
      expect(await started.app.get(TieredCache).get('cat:7')).toEqual({ id: '7', name: 'cat 7' });
    });

    it('`constructor(private cache: Cache)`: the Cache class token is CACHE_MANAGER itself', async () => {
      const { app, origin } = await start(
        TieredCacheModule.register({ namespace, tiers: fullChain() }),
        [],
        { providers: [CatsService] },
      );
      expect(app.get(Cache)).toBe(app.get(CACHE_MANAGER));
      const cats = app.get(CatsService);
      expect(await cats.find(3)).toEqual({ id: 3 });
      expect(await cats.find(3)).toEqual({ id: 3 });
      expect(origin.calls).toBe(1);
      expect(await app.get(TieredCache).get('cat-service:3')).toEqual({ id: 3 });
    });
  });

  describe('CacheInterceptor, @CacheKey, @CacheTTL', () => {
    it('@UseInterceptors(CacheInterceptor): keyed by URL, the class @CacheTTL, X-Cache MISS then HIT', async () => {
      const { http, origin, cache } = await start(
        TieredCacheModule.register({ namespace, tiers: fullChain() }),
        [DogsController],
      );
      const since = Date.now();
      const first = await http.get('/dogs').expect(200, [{ name: 'Rex' }]);
      const second = await http.get('/dogs').expect(200, [{ name: 'Rex' }]);
      expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
      expect(origin.calls).toBe(1);
      expect(await cache.get('/dogs')).toEqual([{ name: 'Rex' }]);
      await expectExpiry(cache, '/dogs', 30_000, since);
      await http.get('/dogs?page=2').expect(200); // another URL, another entry
      expect(origin.calls).toBe(2);
    });

    it('@CacheKey names the entry and @CacheTTL on the handler sets its TTL', async () => {
      const { app, http, origin, cache } = await start(
        TieredCacheModule.register({ namespace, tiers: fullChain() }),
        [DogsController],
      );
      const since = Date.now();
      await http.get('/dogs/custom').expect(200, { custom: true });
      await http.get('/dogs/custom').expect(200, { custom: true });
      expect(origin.calls).toBe(1);
      expect(await app.get(TieredCache).get('custom_key')).toEqual({ custom: true });
      await expectExpiry(cache, 'custom_key', 20_000, since);
    });

    it('@CacheTTL(300): the entry expires and the next request reaches the handler again', async () => {
      const { http, origin } = await start(
        TieredCacheModule.register({ namespace, tiers: fullChain() }),
        [DogsController],
      );
      await http.get('/dogs/short').expect(200, { short: true });
      expect(origin.calls).toBe(1);
      // Polled: the entry must be gone from every tier, however busy the machine is.
      expect(
        await eventually(async () => {
          await http.get('/dogs/short').expect(200, { short: true });
          return origin.calls === 2;
        }, 15_000),
      ).toBe(true);
    });

    it('a global CacheInterceptor (APP_INTERCEPTOR) caches every GET, with the module ttl', async () => {
      const { http, origin, cache } = await start(
        TieredCacheModule.register({ namespace, ttl: 50_000, tiers: fullChain() }),
        [BirdsController],
        { providers: [{ provide: APP_INTERCEPTOR, useClass: CacheInterceptor }] },
      );
      const since = Date.now();
      await http.get('/birds').expect(200, [{ name: 'Tweety' }]);
      await http.get('/birds').expect(200, [{ name: 'Tweety' }]);
      expect(origin.calls).toBe(1);
      await expectExpiry(cache, '/birds', 50_000, since);
    });

    it('a CacheInterceptor subclass with its own trackBy', async () => {
      const { http, origin, cache } = await start(
        TieredCacheModule.register({ namespace, tiers: fullChain() }),
        [FishController],
      );
      await http.get('/fish?a=1').expect(200, [{ name: 'Nemo' }]);
      await http.get('/fish?a=2').expect(200, [{ name: 'Nemo' }]); // same path, same entry
      expect(origin.calls).toBe(1);
      expect(await cache.get('path:/fish')).toEqual([{ name: 'Nemo' }]);
    });

    it('two instances of the app share the entries (the official in-memory store would not)', async () => {
      const module = () => TieredCacheModule.register({ namespace, tiers: fullChain() });
      const a = await start(module(), [DogsController]);
      const b = await start(module(), [DogsController]);
      await a.http.get('/dogs/custom').expect(200, { custom: true });
      const fromB = await b.http.get('/dogs/custom').expect(200, { custom: true });
      expect(fromB.headers['x-cache']).toBe('HIT');
      expect([a.origin.calls, b.origin.calls]).toEqual([1, 0]);
    });
  });

  describe('isGlobal', () => {
    it.each([
      [
        'register',
        () => TieredCacheModule.register({ isGlobal: true, namespace, tiers: fullChain() }),
      ],
      [
        'registerAsync',
        () =>
          TieredCacheModule.registerAsync({
            isGlobal: true,
            useFactory: () => ({ namespace, tiers: fullChain() }),
          }),
      ],
    ])(
      '%s({ isGlobal: true }): a module that does not import it injects CACHE_MANAGER',
      async (_, module) => {
        const { http, origin } = await start(module(), [], { imports: [FeatureModule] });
        await http.get('/global').expect(200, { global: true });
        await http.get('/global').expect(200, { global: true });
        expect(origin.calls).toBe(1);
        await http.get('/global/direct').expect(200, { value: 'yes' });
      },
    );

    it('without isGlobal, such a module cannot resolve CACHE_MANAGER', async () => {
      await expect(
        start(TieredCacheModule.register({ namespace, tiers: fullChain() }), [], {
          imports: [FeatureModule],
        }),
      ).rejects.toThrow(/can't resolve dependencies of the CacheInterceptor \(\?, Reflector\)/);
    });
  });

  describe('registerAsync()', () => {
    it('useFactory with imports and inject (ConfigModule / ConfigService)', async () => {
      const started = await start(
        TieredCacheModule.registerAsync({
          imports: [
            ConfigModule.forRoot({
              ignoreEnvFile: true,
              load: [() => ({ CACHE_NAMESPACE: namespace, CACHE_TTL: 35_000 })],
            }),
          ],
          useFactory: async (configService: ConfigService) => ({
            namespace: configService.getOrThrow<string>('CACHE_NAMESPACE'),
            ttl: configService.getOrThrow<number>('CACHE_TTL'),
            tiers: fullChain(),
          }),
          inject: [ConfigService],
        }),
        [CatsController],
      );
      await expectOptionsInUse(started, { ttl: 35_000, tiers: fullChainKinds });
    });

    it('useClass: a CacheOptionsFactory (createCacheOptions) whose dependency comes from extraProviders', async () => {
      const started = await start(
        TieredCacheModule.registerAsync({
          useClass: CacheConfigService,
          extraProviders: [{ provide: CacheSettings, useValue: settings(25_000) }],
        }),
        [CatsController],
      );
      await expectOptionsInUse(started, { ttl: 25_000, tiers: fullChainKinds });
    });

    it('useClass without the extraProviders its class needs fails to resolve it', async () => {
      await expect(
        start(TieredCacheModule.registerAsync({ useClass: CacheConfigService })),
      ).rejects.toThrow(/can't resolve dependencies of the CacheConfigService \(\?\)/);
    });

    it('useClass: a class implementing this module’s own factory method, create()', async () => {
      @Injectable()
      class TieredOptions implements TieredCacheOptionsFactory {
        create(): TieredCacheModuleOptions {
          return { namespace, ttl: 15_000, tiers: fullChain().slice(0, 2) };
        }
      }
      const started = await start(TieredCacheModule.registerAsync({ useClass: TieredOptions }), [
        CatsController,
      ]);
      await expectOptionsInUse(started, { ttl: 15_000, tiers: ['memory', 'memcached'] });
    });

    it('useExisting: the CacheOptionsFactory provider of an imported config module', async () => {
      const started = await start(
        TieredCacheModule.registerAsync({
          imports: [AppConfigModule.forRoot(settings(55_000))],
          useExisting: AppConfigService,
        }),
        [CatsController],
      );
      await expectOptionsInUse(started, { ttl: 55_000, tiers: fullChainKinds });
    });

    it('an options class with neither create() nor createCacheOptions() fails at bootstrap', async () => {
      @Injectable()
      class NoFactory {
        options() {
          return {};
        }
      }
      await expect(
        start(
          TieredCacheModule.registerAsync({
            useClass: NoFactory as unknown as Type<TieredCacheOptionsFactory>,
          }),
        ),
      ).rejects.toThrow('useClass: NoFactory implements neither create() nor createCacheOptions()');
    });
  });
});
