import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { TieredCache } from '../../lib';
import { AppModule } from '../../sample/app.module';
import { ProductsRepository } from '../../sample/products/products.repository';
import { uniqueName } from '../harness/env';

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
});
