import 'reflect-metadata';
import type { INestApplication, LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Gauge, register } from 'prom-client';
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

  it('GET /health: Terminus with the cache indicator, every tier and the bus up', async () => {
    const http = request(app.getHttpServer());
    let body: Record<string, unknown> = {};
    // The bus may still be subscribing: `degraded` until it is.
    const ok = await eventually(async () => {
      body = (await http.get('/health').expect(200)).body;
      return body.status === 'ok';
    }, 15_000);
    expect(ok).toBe(true);
    expect(body).toMatchObject({
      info: {
        cache: {
          status: 'up',
          tiers: {
            memory: { status: 'up', circuit: 'closed' },
            memcached: { status: 'up', circuit: 'closed' },
            cassandra: { status: 'up', circuit: 'closed' },
          },
          bus: 'up',
        },
      },
      error: {},
    });
  });

  it("GET /metrics: prom-client's default registry, in its text format", async () => {
    const gauge = new Gauge({ name: 'sample_e2e_probe', help: 'set by the sample e2e test' });
    try {
      gauge.set(42);
      const res = await request(app.getHttpServer()).get('/metrics').expect(200);
      expect(res.headers['content-type']).toBe(register.contentType);
      expect(res.text).toContain('# TYPE sample_e2e_probe gauge\nsample_e2e_probe 42\n');
      // The cache's own (the sample sets `metrics: true`).
      expect(res.text).toMatch(/^tiered_cache_\w+\{.*namespace="sample_/m);
    } finally {
      register.removeSingleMetric('sample_e2e_probe');
    }
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

  it('starts with no cache server (a fresh machine): memory tier alone, said in one line; /health up', async () => {
    const names = ['MEMCACHED_SERVERS', 'CASSANDRA_CONTACT_POINTS', 'REDIS_URL'];
    const saved = names.map((name) => process.env[name]);
    const lines: string[] = [];
    const logger: LoggerService = {
      log: (message: unknown, context?: unknown) => void lines.push(`${context}: ${message}`),
      error: () => undefined,
      warn: () => undefined,
    };
    for (const name of names) delete process.env[name];
    let alone: INestApplication | undefined;
    try {
      const moduleRef = await Test.createTestingModule({ imports: [AppModule] })
        .setLogger(logger)
        .compile();
      alone = await moduleRef.createNestApplication({ logger: false }).init();
    } finally {
      names.forEach((name, i) => {
        if (saved[i] !== undefined) process.env[name] = saved[i];
      });
    }
    try {
      expect(lines.filter((l) => l.startsWith('Sample: '))).toEqual([
        'Sample: no cache servers configured (MEMCACHED_SERVERS, CASSANDRA_CONTACT_POINTS): running on the memory tier alone',
      ]);
      const { body } = await request(alone.getHttpServer()).get('/health').expect(200);
      expect(body.details.cache).toEqual({
        status: 'up',
        tiers: { memory: { status: 'up', kind: 'memory', circuit: 'closed' } },
        bus: 'absent',
        probe: 'done',
      });
      await request(alone.getHttpServer()).get('/products').expect(200);
    } finally {
      await alone.close();
    }
  });
});
