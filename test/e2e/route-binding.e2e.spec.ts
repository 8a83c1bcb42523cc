import 'reflect-metadata';
import { jest } from '@jest/globals';
import { Controller, Get, type INestApplication, Logger, Module, Post } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { CacheEvict, Cached, TieredCacheInterceptor, TieredCacheModule } from '../../lib';
import { uniqueName } from '../harness/env';

/**
 * Which routes go through the module's interceptor: the handlers `@Cached()` or `@CacheEvict()`
 * decorate, each once, and no other. Nest runs its interceptor pipeline only for a route that
 * has interceptors, so a global one would slow every route of the app. Memory tier only.
 */

let served = 0;

@Controller()
class RoutesController {
  @Get('plain')
  plain() {
    return { n: ++served };
  }

  @Get('cached')
  @Cached({ ttl: 60_000 })
  cached() {
    return { n: ++served };
  }

  @Post('both')
  @Cached({ ttl: 60_000, methods: ['POST'] })
  @CacheEvict({ keys: 'elsewhere' })
  both() {
    return { n: ++served };
  }
}

/** A feature module that does not import TieredCacheModule (the root module does). */
@Module({ controllers: [RoutesController] })
class FeatureModule {}

describe('the routes the module intercepts', () => {
  let app: INestApplication;
  let intercepted: ReturnType<typeof jest.spyOn>;

  beforeAll(async () => {
    intercepted = jest.spyOn(TieredCacheInterceptor.prototype, 'intercept');
    const moduleRef = await Test.createTestingModule({
      imports: [
        TieredCacheModule.forRoot({ namespace: uniqueName('routes'), tiers: [{ type: 'memory' }] }),
        FeatureModule,
      ],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
  });

  afterAll(async () => {
    intercepted.mockRestore();
    await app?.close();
  });

  beforeEach(() => intercepted.mockClear());

  it('leaves a handler without the decorators alone: no interceptor of the module runs', async () => {
    const res = await request(app.getHttpServer()).get('/plain').expect(200);
    expect(res.headers['x-cache']).toBeUndefined();
    expect(intercepted).not.toHaveBeenCalled();
  });

  it('caches a decorated handler of a module that does not import TieredCacheModule', async () => {
    const first = await request(app.getHttpServer()).get('/cached').expect(200);
    const second = await request(app.getHttpServer()).get('/cached').expect(200);
    expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
    expect(second.body).toEqual(first.body);
    expect(intercepted).toHaveBeenCalledTimes(2);
  });

  it('intercepts a handler with both decorators once per request', async () => {
    const first = await request(app.getHttpServer()).post('/both').expect(201);
    const second = await request(app.getHttpServer()).post('/both').expect(201);
    expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
    expect(intercepted).toHaveBeenCalledTimes(2);
  });
});

describe('decorated handlers in an application without TieredCacheModule', () => {
  it('run uncached, with one warning', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [FeatureModule] }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    try {
      await app.init();
      const first = await request(app.getHttpServer()).get('/cached').expect(200);
      const second = await request(app.getHttpServer()).get('/cached').expect(200);
      expect(second.body.n).toBe(first.body.n + 1);
      expect(second.headers['x-cache']).toBeUndefined();
      const said = warn.mock.calls.map((c) => String(c[0]));
      expect(
        said.filter((line) => line.includes('TieredCacheModule is not imported')),
      ).toHaveLength(1);
    } finally {
      warn.mockRestore();
      await app.close();
    }
  });
});
