import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Controller, Get, type INestApplication, Query } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import {
  InvalidOptionError,
  TieredCache,
  TieredCacheModule,
  type TieredCacheModuleOptions,
} from '../../lib';
import {
  TieredCacheHealthIndicator,
  type TieredCacheHealth,
  type TieredCacheHealthOptions,
} from '../../lib/nest/tiered-cache.health';
import { dropKeyspaceAfterAll, testServers, uniqueName } from '../harness/env';
import type { MemcachedNode } from '../harness/memcached';
import { eventually } from '../support/eventually';
import { freeze, MemcachedTestbed, pidOf } from '../support/memcached';

/**
 * The Terminus health indicator on real servers: memory → a memcached of this file's own (killed,
 * frozen and restarted here; the shared test servers are left alone) → the test Cassandra, with
 * the test Redis as invalidation bus; checked over HTTP through Terminus' `HealthCheckService`.
 */
const servers = testServers();
const keyspace = uniqueName('health').toLowerCase();
dropKeyspaceAfterAll(keyspace);
const bed = new MemcachedTestbed();

/** Generous: the 2-core test machine runs Cassandra's JVM beside Jest. */
const PATIENCE = 30_000;

/** The policies the test controller checks with, by `?policy=`. */
const POLICIES: Record<string, TieredCacheHealthOptions> = {
  default: {},
  memcached: { require: ['memcached'] },
  cassandra: { require: ['cassandra'] },
  all: { require: 'all' },
  bus: { requireBus: true },
  circuits: { probe: false },
  invalid: { require: ['nonesuch'] },
};

@Controller()
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly cache: TieredCacheHealthIndicator,
  ) {}

  @Get('health')
  @HealthCheck()
  check(@Query('policy') policy = 'default') {
    // The probe may wait long here: a slow check must not pass for a failing tier.
    const options = { timeoutMs: PATIENCE, ...POLICIES[policy] };
    return this.health.check([() => this.cache.isHealthy('cache', options)]);
  }
}

const apps: INestApplication[] = [];

async function createApp(options: TieredCacheModuleOptions): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TieredCacheModule.forRoot({ namespace: uniqueName('health'), logErrors: false, ...options }),
      TerminusModule.forRoot({ logger: false }),
    ],
    controllers: [HealthController],
    providers: [TieredCacheHealthIndicator],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  apps.push(app);
  return app;
}

/** `GET /health?policy=…`: the HTTP status, Terminus' overall status, and the cache's details. */
async function health(
  app: INestApplication,
  policy = 'default',
): Promise<{ code: number; status: string; cache: TieredCacheHealth }> {
  const res = await request(app.getHttpServer()).get(`/health?policy=${policy}`);
  return { code: res.status, status: res.body.status, cache: res.body.details?.cache };
}

afterAll(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
  await bed.close();
});

describe('TieredCacheHealthIndicator (real servers, Terminus)', () => {
  let node: MemcachedNode;
  let app: INestApplication;

  beforeAll(async () => {
    node = await bed.node();
    app = await createApp({
      tiers: [
        { type: 'memory' },
        // A dead node is refused at once; a busy machine can take long to answer a live one.
        { type: 'memcached', servers: [node.address], timeout: 2000 },
        { type: 'cassandra', ...servers.cassandra, keyspace },
      ],
      bus: { type: 'redis', url: servers.redis.url },
      circuitBreaker: { cooldownMs: 2000 },
    });
  });

  it('everything up: up (200), each tier and the bus in the details', async () => {
    let last: Awaited<ReturnType<typeof health>> | undefined;
    // The bus may still be subscribing: degraded until it is.
    expect(await eventually(async () => (last = await health(app)).status === 'ok', PATIENCE)).toBe(
      true,
    );
    expect(last).toEqual({
      code: 200,
      status: 'ok',
      cache: {
        status: 'up',
        tiers: {
          memory: { status: 'up', kind: 'memory', circuit: 'closed' },
          memcached: { status: 'up', kind: 'memcached', circuit: 'closed' },
          cassandra: { status: 'up', kind: 'cassandra', circuit: 'closed' },
        },
        bus: 'up',
        probe: 'done',
      },
    });
    for (const policy of ['memcached', 'all', 'bus', 'circuits'])
      expect(await health(app, policy)).toMatchObject({ code: 200, status: 'ok' });
  });

  it('memcached hung: the check stops waiting at timeoutMs (probe pending); once the tier times out: down', async () => {
    const indicator = app.get(TieredCacheHealthIndicator);
    const pid = pidOf(node);
    await freeze(pid);
    try {
      // The probe waits on memcached (2 s timeout); the check does not.
      const early = await indicator.check({ timeoutMs: 50 });
      expect(early.probe).toBe('pending');
      let last: TieredCacheHealth | undefined;
      expect(
        await eventually(
          async () =>
            (last = await indicator.check({ timeoutMs: PATIENCE })).tiers.memcached.status ===
            'down',
          PATIENCE,
        ),
      ).toBe(true);
      expect(last).toMatchObject({
        status: 'degraded',
        tiers: { memcached: { status: 'down', error: expect.any(String) } },
        message: expect.stringContaining('memcached is down'),
      });
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // Answering again: the probe after the cooldown closes the circuit.
    expect(await eventually(async () => (await health(app)).status === 'ok', PATIENCE)).toBe(true);
  });

  it('memcached killed: degraded (200) by default, down (503) when required; up again when it returns', async () => {
    const cache = app.get(TieredCache);
    const indicator = app.get(TieredCacheHealthIndicator);
    await node.stop('SIGKILL');

    // Circuits alone (no probe): nothing has been sent to memcached since, so nothing shows yet…
    expect((await indicator.check({ probe: false })).tiers.memcached.status).toBe('up');
    // …until requests fail there and open its circuit (5 failures).
    for (let i = 0; i < 5; i++) await cache.get(uniqueName('k'));
    expect(await indicator.check({ probe: false })).toMatchObject({
      status: 'degraded',
      tiers: { memcached: { status: 'down', circuit: 'open' } },
    });

    expect(await eventually(async () => (await health(app)).status === 'degraded', PATIENCE)).toBe(
      true,
    );
    const degraded = await health(app);
    expect(degraded).toMatchObject({
      code: 200,
      cache: {
        status: 'degraded',
        tiers: {
          memory: { status: 'up' },
          memcached: { status: 'down', error: expect.any(String) },
          cassandra: { status: 'up' },
        },
        bus: 'up',
      },
    });
    expect(degraded.cache.message).toMatch(
      /^memcached is down .*: the cache serves from memory, cassandra$/,
    );
    expect(await health(app, 'cassandra')).toMatchObject({ code: 200, status: 'degraded' });
    for (const policy of ['memcached', 'all']) {
      const down = await health(app, policy);
      expect(down).toMatchObject({ code: 503, status: 'error', cache: { status: 'down' } });
      expect(down.cache.message).toMatch(/: required: memcached$/);
    }

    // With no tier left that can answer, the default policy fails too.
    const alone = await createApp({
      tiers: [{ type: 'memcached', servers: [node.address], timeout: 2000, name: 'sessions' }],
    });
    expect(await eventually(async () => (await health(alone)).code === 503, PATIENCE)).toBe(true);
    expect((await health(alone)).cache).toMatchObject({
      status: 'down',
      tiers: { sessions: { status: 'down', kind: 'memcached' } },
      bus: 'absent',
      message: expect.stringMatching(/^sessions is down .*: no tier can answer$/),
    });
    // `require` takes kinds: every memcached tier.
    await expect(
      alone.get(TieredCacheHealthIndicator).check({ require: ['memcached'] }),
    ).resolves.toMatchObject({
      status: 'down',
      message: expect.stringMatching(/required: sessions$/),
    });

    await node.start();
    // The circuit half-opens after its cooldown; the next probe is the request that closes it.
    for (const target of [app, alone])
      expect(await eventually(async () => (await health(target)).status === 'ok', PATIENCE)).toBe(
        true,
      );
    expect(await health(app, 'memcached')).toMatchObject({
      code: 200,
      cache: { tiers: { memcached: { status: 'up', circuit: 'closed' } } },
    });
  });

  it('rejects unknown or invalid options, naming the option', async () => {
    const indicator = app.get(TieredCacheHealthIndicator);
    const cases: Array<[unknown, string, RegExp]> = [
      [{ requir: 'all' }, 'isHealthy options.requir', /did you mean "require"/],
      [
        { require: ['memcahced'] },
        'isHealthy options.require[0]',
        /did you mean "memcached".*its tiers: memory, memcached, cassandra/,
      ],
      [{ require: 'every' }, 'isHealthy options.require', /must be 'any', 'all' or an array/],
      [{ timeoutMs: 0 }, 'isHealthy options.timeoutMs', /> 0/],
      [{ probe: 'yes' }, 'isHealthy options.probe', /true or false/],
      [[], 'isHealthy options', /must be an object/],
    ];
    for (const [options, path, message] of cases) {
      const err = await indicator
        .check(options as TieredCacheHealthOptions)
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidOptionError);
      expect(err).toMatchObject({ path, message: expect.stringMatching(message) });
    }
    await expect(indicator.isHealthy('')).rejects.toMatchObject({ path: 'isHealthy key' });
    await expect(indicator.isHealthy('cache', { requireBus: 1 as never })).rejects.toMatchObject({
      path: 'isHealthy options.requireBus',
    });
    const noBus = await createApp({ tiers: [{ type: 'memory' }] });
    await expect(
      noBus.get(TieredCacheHealthIndicator).check({ requireBus: true }),
    ).rejects.toMatchObject({
      path: 'isHealthy options.requireBus',
      message: expect.stringContaining('no invalidation bus'),
    });
    // Over HTTP, an invalid option is the app's error (500), not the cache's health (503).
    await request(app.getHttpServer()).get('/health?policy=invalid').expect(500);
  });

  it('the library loads without @nestjs/terminus; isHealthy() then rejects with E_MISSING_PEER, check() works', async () => {
    // A CommonJS process (as the published package runs) where the package cannot be found,
    // neither by require() nor by import().
    const script = `
      const Module = require('node:module');
      const missing = (s) => s === '@nestjs/terminus' || s.startsWith('@nestjs/terminus/');
      const load = Module._load;
      Module._load = function (request, ...rest) {
        if (missing(request)) throw Object.assign(new Error("Cannot find module '@nestjs/terminus'"), { code: 'MODULE_NOT_FOUND' });
        return load.call(this, request, ...rest);
      };
      Module.register('data:text/javascript,' + encodeURIComponent(
        'export async function resolve(s, c, next) { if (s === "@nestjs/terminus" || s.startsWith("@nestjs/terminus/")) throw Object.assign(new Error("Cannot find package @nestjs/terminus"), { code: "ERR_MODULE_NOT_FOUND" }); return next(s, c); }'));
      require('reflect-metadata');
      const lib = require('./lib');
      const { TieredCacheHealthIndicator } = require('./lib/nest/tiered-cache.health');
      const indicator = new TieredCacheHealthIndicator({ store: lib.createTieredStore() });
      (async () => {
        const health = await indicator.check();
        const err = await indicator.isHealthy().catch((e) => e);
        console.log(JSON.stringify({ status: health.status, code: err.code, message: err.message }));
        process.exit(0);
      })();
    `;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', '-e', script],
      {
        cwd: process.cwd(),
        timeout: PATIENCE,
        env: { ...process.env, TS_NODE_PROJECT: join(process.cwd(), 'tsconfig.json') },
      },
    );
    expect(JSON.parse(stdout.trim())).toEqual({
      status: 'up',
      code: 'E_MISSING_PEER',
      message: expect.stringContaining('npm install @nestjs/terminus'),
    });
  });
});
