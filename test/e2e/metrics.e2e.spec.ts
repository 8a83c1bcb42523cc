import 'reflect-metadata';
import { Controller, Get, Header, Inject, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Registry, register } from 'prom-client';
import request from 'supertest';
import { TieredCacheModule, type TieredCacheModuleOptions } from '../../lib';
import { testServers, uniqueName } from '../harness/env';
import { Origin, ProductsController, ProductsService } from './fixtures';

/**
 * The module's `metrics` option in a real Nest app over memory and the test memcached: the
 * metrics are registered at bootstrap, scraped over HTTP as Prometheus would, and removed when
 * the app closes; bad values fail at bootstrap naming the option.
 */

const servers = testServers();
const REGISTRY = Symbol('registry');

/** A scrape endpoint, as `@willsoto/nestjs-prometheus` would serve one. */
@Controller('metrics')
class MetricsController {
  constructor(@Inject(REGISTRY) private readonly registry: Registry) {}

  @Get()
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  scrape(): Promise<string> {
    return this.registry.metrics();
  }
}

/** The value of the series `name{labels}` in a scrape (labels as prom-client writes them). */
function sample(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('TieredCacheModule metrics option (e2e, memcached)', () => {
  const apps: INestApplication[] = [];

  async function createApp(
    options: Partial<TieredCacheModuleOptions> & Record<string, unknown>,
    registry: Registry = register,
    build: 'forRoot' | 'forRootAsync' = 'forRoot',
  ): Promise<INestApplication> {
    const moduleOptions = {
      namespace: uniqueName('metrics'),
      tiers: [
        { type: 'memory' as const },
        { type: 'memcached' as const, servers: servers.memcached, timeout: 3000 },
      ],
      ...options,
    } as TieredCacheModuleOptions;
    const moduleRef = await Test.createTestingModule({
      imports: [
        build === 'forRoot'
          ? TieredCacheModule.forRoot(moduleOptions)
          : TieredCacheModule.forRootAsync({ useFactory: async () => moduleOptions }),
      ],
      controllers: [ProductsController, MetricsController],
      providers: [
        ProductsService,
        { provide: Origin, useValue: new Origin() },
        { provide: REGISTRY, useValue: registry },
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    apps.push(app);
    return app;
  }

  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });

  it('counts a cached handler: a miss, its origin call and lease, then a memory hit; removed at close', async () => {
    const registry = new Registry();
    const namespace = uniqueName('metrics');
    const app = await createApp({ namespace, metrics: { registry } }, registry);
    const http = request(app.getHttpServer());
    expect((await http.get('/products?a=1').expect(200)).headers['x-cache']).toBe('MISS');
    expect((await http.get('/products?a=1').expect(200)).headers['x-cache']).toBe('HIT');

    const scrape = await http.get('/metrics').expect(200);
    const text = scrape.text;
    const ns = `namespace="${namespace}"`;
    // The first request: a miss in both tiers, the lease taken on memcached, the lease tier read
    // again (a miss), one origin call; the second: a memory hit.
    expect({
      memoryHits: sample(text, 'tiered_cache_reads_total', `${ns},tier="memory",result="hit"`),
      memoryMisses: sample(text, 'tiered_cache_reads_total', `${ns},tier="memory",result="miss"`),
      memcachedHits: sample(
        text,
        'tiered_cache_reads_total',
        `${ns},tier="memcached",result="hit"`,
      ),
      memcachedMisses: sample(
        text,
        'tiered_cache_reads_total',
        `${ns},tier="memcached",result="miss"`,
      ),
      origin: sample(text, 'tiered_cache_origin_duration_seconds_count', `${ns},outcome="ok"`),
      acquired: sample(text, 'tiered_cache_leases_total', `${ns},outcome="acquired"`),
      errors: sample(text, 'tiered_cache_tier_errors_total', `${ns},tier="memcached"`),
      circuit: sample(text, 'tiered_cache_circuit_state', `${ns},tier="memcached"`),
      entries: sample(text, 'tiered_cache_memory_entries', `${ns},tier="memory"`),
    }).toEqual({
      memoryHits: 1,
      memoryMisses: 1,
      memcachedHits: 0,
      memcachedMisses: 2,
      origin: 1,
      acquired: 1,
      errors: 0,
      circuit: 0,
      entries: 1,
    });
    expect(text).toContain('# TYPE tiered_cache_tier_call_duration_seconds histogram');
    expect(
      sample(
        text,
        'tiered_cache_tier_call_duration_seconds_count',
        `${ns},tier="memcached",op="get",result="ok"`,
      ),
    ).toBeGreaterThanOrEqual(1);

    await app.close();
    apps.splice(apps.indexOf(app), 1);
    expect(await registry.getMetricsAsJSON()).toEqual([]);
  });

  it.each(['forRoot', 'forRootAsync'] as const)(
    '%s with metrics: true registers in prom-client’s default registry until the app closes',
    async (build) => {
      const app = await createApp({ metrics: true }, register, build);
      expect(register.getSingleMetric('tiered_cache_reads_total')).toBeDefined();
      const text = (await request(app.getHttpServer()).get('/metrics').expect(200)).text;
      expect(text).toContain('# TYPE tiered_cache_reads_total counter');
      await app.close();
      apps.splice(apps.indexOf(app), 1);
      expect(register.getSingleMetric('tiered_cache_reads_total')).toBeUndefined();
    },
  );

  it('two apps share a registry, told apart by namespace; closing one leaves the other', async () => {
    const registry = new Registry();
    const [one, two] = [uniqueName('one'), uniqueName('two')];
    const a = await createApp({ namespace: one, metrics: { registry } }, registry);
    const b = await createApp({ namespace: two, metrics: { registry } }, registry);
    await request(a.getHttpServer()).get('/products?x=1').expect(200);
    const before = (await request(b.getHttpServer()).get('/metrics').expect(200)).text;
    const origin = (ns: string) =>
      sample(
        before,
        'tiered_cache_origin_duration_seconds_count',
        `namespace="${ns}",outcome="ok"`,
      );
    expect([origin(one), origin(two)]).toEqual([1, undefined]);
    expect(before).toContain(`tiered_cache_reads_total{namespace="${two}"`);
    await a.close();
    apps.splice(apps.indexOf(a), 1);
    const after = (await request(b.getHttpServer()).get('/metrics').expect(200)).text;
    expect(after).not.toContain(`namespace="${one}"`);
    expect(after).toContain(`tiered_cache_reads_total{namespace="${two}"`);
  });

  it('fails at bootstrap with a message naming the bad metrics option', async () => {
    await expect(createApp({ metrics: { prefix: 'bad prefix' } })).rejects.toThrow(
      /^metrics\.prefix: "bad prefix" is not a metric name prefix/,
    );
    await expect(createApp({ metrics: { regsitry: new Registry() } as never })).rejects.toThrow(
      'metrics.regsitry: unknown option (did you mean "registry"?)',
    );
    await expect(createApp({ metrics: 'on' as never })).rejects.toThrow(
      'metrics: must be true, false or an object { registry?, prefix? }, got "on"',
    );
    await expect(createApp({ metric: true })).rejects.toThrow(
      'metric: unknown option (did you mean "metrics"?)',
    );
    expect(register.getSingleMetric('tiered_cache_reads_total')).toBeUndefined();
  });
});
