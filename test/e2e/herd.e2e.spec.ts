import 'reflect-metadata';
import { Controller, Get, type INestApplication, Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { Cached, TieredCacheModule, type TierOptions } from '../../lib';
import { testServers, uniqueName } from '../harness/env';
import { eventually } from '../support/eventually';
import { ManualClock } from '../support/manual-clock';
import { Origin } from './fixtures';

const servers = testServers();
const keyspace = uniqueName('herde2e').toLowerCase();
const tiers: TierOptions[] = [
  { type: 'memory' },
  { type: 'memcached', servers: servers.memcached },
  { type: 'cassandra', ...servers.cassandra, keyspace },
];

/** Versions of the data, shared by both instances (a counter per origin would repeat). */
const versions = { prices: 0, hot: 0 };

/**
 * An origin answer waits for its gate: the test holds a refresh running for as long as a burst
 * takes, however busy the machine, instead of counting on the burst beating a delay.
 */
class Gate {
  private opened: Promise<void> = Promise.resolve();
  private open = () => {};
  hold(): void {
    this.opened = new Promise((r) => (this.open = r));
  }
  release(): void {
    this.open();
  }
  async pass<T>(value: Promise<T>): Promise<T> {
    const v = await value;
    await this.opened;
    return v;
  }
}
const gates = { prices: new Gate(), hot: new Gate() };

@Injectable()
class PricesService {
  constructor(readonly origin: Origin) {}

  @Cached({ key: 'prices', ttl: 1000, grace: 60_000 })
  async all(): Promise<{ version: number }> {
    return gates.prices.pass(this.origin.query({ version: ++versions.prices }, 100));
  }
}

@Controller('hot')
class HotController {
  constructor(private readonly origin: Origin) {}

  @Get()
  @Cached({ ttl: 1000, grace: 60_000 })
  hot() {
    return gates.hot.pass(this.origin.query({ version: ++versions.hot }, 100));
  }
}

describe('@Cached herd protection (e2e, two app instances, real servers)', () => {
  const apps: INestApplication[] = [];
  let clock: ManualClock;

  /** Two instances of one app over the same servers, each with its own origin counter. */
  async function twoApps() {
    const namespace = uniqueName('herde2e');
    return Promise.all(
      [1, 2].map(async () => {
        const origin = new Origin();
        const moduleRef = await Test.createTestingModule({
          imports: [TieredCacheModule.forRoot({ namespace, clock, tiers })],
          controllers: [HotController],
          providers: [PricesService, { provide: Origin, useValue: origin }],
        }).compile();
        const app = moduleRef.createNestApplication({ logger: false });
        await app.listen(0, '127.0.0.1');
        apps.push(app);
        return { app, origin, url: await app.getUrl() };
      }),
    );
  }

  beforeEach(() => {
    clock = new ManualClock();
    versions.prices = versions.hot = 0;
  });
  afterEach(async () => {
    Object.values(gates).forEach((g) => g.release());
    await Promise.all(apps.splice(0).map((a) => a.close()));
  });

  it('200 parallel requests: 1 handler call when cold; all STALE at once and 1 refresh after the TTL', async () => {
    const instances = await twoApps();
    const calls = () => instances.reduce((n, i) => n + i.origin.calls, 0);
    const burst = () =>
      Promise.all(Array.from({ length: 200 }, (_, i) => request(instances[i % 2].url).get('/hot')));

    const cold = await burst();
    expect(cold.every((r) => r.status === 200 && r.body.version === 1)).toBe(true);
    expect(calls()).toBe(1);
    // The instance that computed answered MISS; the other one waited for its value: HIT.
    expect(new Set(cold.map((r) => r.headers['x-cache']))).toEqual(new Set(['MISS', 'HIT']));

    // The refresh runs until released: every answer of the burst is the stale one, none waits.
    gates.hot.hold();
    clock.advance(1500);
    const stale = await burst();
    expect(stale.every((r) => r.headers['x-cache'] === 'STALE' && r.body.version === 1)).toBe(true);
    gates.hot.release();
    expect(
      await eventually(async () => {
        const r = await request(instances[0].url).get('/hot');
        return r.headers['x-cache'] === 'HIT' && r.body.version === 2;
      }, 15_000),
    ).toBe(true);
    expect(calls()).toBe(2);
  });

  it('a @Cached service method: 200 parallel calls across both instances, 1 origin call each time', async () => {
    const instances = await twoApps();
    const services = instances.map((i) => i.app.get(PricesService));
    const calls = () => instances.reduce((n, i) => n + i.origin.calls, 0);
    const burst = () => Promise.all(Array.from({ length: 200 }, (_, i) => services[i % 2].all()));

    expect((await burst()).every((r) => r.version === 1)).toBe(true);
    expect(calls()).toBe(1);

    // Stale at once: the burst ends while the refresh is held running.
    gates.prices.hold();
    clock.advance(1500);
    expect((await burst()).every((r) => r.version === 1)).toBe(true);
    expect(await eventually(() => calls() === 2, 15_000)).toBe(true); // the one refresh, held
    gates.prices.release();
    expect(await eventually(async () => (await services[1].all()).version === 2, 15_000)).toBe(
      true,
    );
    expect(calls()).toBe(2);
  });
});
