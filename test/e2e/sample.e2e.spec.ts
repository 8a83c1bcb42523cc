import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { TieredCache } from '../../lib';
import { AppModule } from '../../sample/app.module';
import { ProductsRepository } from '../../sample/products/products.repository';
import { setTimeout as sleep } from 'node:timers/promises';
import { uniqueName } from '../harness/env';
import { eventually } from '../support/eventually';

describe('sample app (the product catalogue, on the test servers)', () => {
  let app: INestApplication;

  beforeAll(async () => {
    process.env.CACHE_NAMESPACE = uniqueName('sample');
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
  });

  afterAll(async () => {
    await app.close();
    delete process.env.CACHE_NAMESPACE;
  });

  it('runs on every tier the environment names', () => {
    expect(
      app
        .get(TieredCache)
        .stats()
        .map((t) => t.kind),
    ).toEqual(['memory', 'memcached', 'cassandra']);
    expect(app.get(TieredCache).store.busStats()).toBeDefined();
  });

  it('caches the list and the products, and an update evicts them', async () => {
    const http = request(app.getHttpServer());
    const repository = app.get(ProductsRepository);
    expect((await http.get('/products').expect(200)).headers['x-cache']).toBe('MISS');
    expect((await http.get('/products').expect(200)).headers['x-cache']).toBe('HIT');
    await http.get('/products/2').expect(200);
    await http.get('/products/2').expect(200);
    expect(repository.queries).toBe(2);

    await http.put('/products/2').send({ price: 99 }).expect(200);
    expect(repository.queries).toBe(3);
    const after = await http.get('/products/2').expect(200);
    expect(after.body.price).toBe(99);
    expect((await http.get('/products').expect(200)).headers['x-cache']).toBe('MISS');
    expect(repository.queries).toBe(5);
    await http.get('/products/404').expect(404);
  });

  it('counts visits through the standard CACHE_MANAGER', async () => {
    const http = request(app.getHttpServer());
    const first = (await http.get('/cache/visits')).body.visits;
    expect((await http.get('/cache/visits')).body.visits).toBe(first + 1);
  });

  it("two instances (REDIS_URL: the invalidation bus) count visits together: each sees the other's write at once", async () => {
    const second = await (
      await Test.createTestingModule({ imports: [AppModule] }).compile()
    )
      .createNestApplication({ logger: false })
      .init();
    try {
      const [a, b] = [app, second].map((x) => x.get(TieredCache).store);
      expect(await eventually(() => !!a.busStats()?.up && !!b.busStats()?.up, 15_000)).toBe(true);
      const [httpA, httpB] = [app, second].map((x) => request(x.getHttpServer()));
      const visit = async (http: typeof httpA) => (await http.get('/cache/visits')).body.visits;
      /** Waits until `to` got every invalidation `from` sent since both were up. */
      const base = new Map([a, b].map((x) => [x, { ...x.busStats()! }]));
      const delivered = (from: typeof a, to: typeof a) =>
        eventually(async () => {
          await sleep(1); // invalidations travel after the response
          const sent = from.busStats()!.published - base.get(from)!.published;
          const got = to.busStats()!.received - base.get(to)!.received;
          return from.busStats()!.inFlight === 0 && got >= sent;
        }, 5000);
      const first = await visit(httpA); // now in a's memory tier
      expect(await delivered(a, b)).toBe(true);
      expect(await visit(httpB)).toBe(first + 1);
      expect(await delivered(b, a)).toBe(true);
      // Without the bus, a would read its own memory copy (first) for up to 5 s.
      expect(await visit(httpA)).toBe(first + 2);
      expect(await delivered(a, b)).toBe(true);
      expect(await visit(httpB)).toBe(first + 3);
    } finally {
      await second.close();
    }
  });
});
