import 'reflect-metadata';
import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Cached, TieredCacheModule } from '../../lib';
import { ManualClock } from '../support/manual-clock';

/** Two cached methods that differ only in their TTL (no herd settings of their own). */
@Injectable()
class Catalog {
  calls = { short: 0, long: 0 };

  @Cached({ ttl: 1000, key: 'short' })
  async short(): Promise<number> {
    return ++this.calls.short;
  }

  @Cached({ ttl: 60_000, key: 'long' })
  async long(): Promise<number> {
    return ++this.calls.long;
  }
}

describe('the entry settings of @Cached() methods', () => {
  const apps: INestApplication[] = [];
  afterEach(() => Promise.all(apps.splice(0).map((a) => a.close())));

  async function app() {
    const clock = new ManualClock();
    const ref = await Test.createTestingModule({
      imports: [TieredCacheModule.forRoot({ tiers: [{ type: 'memory' }], clock })],
      providers: [Catalog],
    }).compile();
    const nest = ref.createNestApplication({ logger: false });
    await nest.init();
    apps.push(nest);
    return { clock, catalog: nest.get(Catalog) };
  }

  it('each decorator stores with its own TTL (decorators without herd settings share none)', async () => {
    const { clock, catalog } = await app();
    expect(await catalog.short()).toBe(1);
    expect(await catalog.long()).toBe(1);
    clock.advance(2000); // past the short TTL, well within the long one
    expect(await catalog.short()).toBe(2);
    expect(await catalog.long()).toBe(1);
    expect(catalog.calls).toEqual({ short: 2, long: 1 });
  });
});
