import 'reflect-metadata';
import {
  Controller,
  Get,
  Injectable,
  type INestApplication,
  NotFoundException,
  Param,
  Query,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import {
  CacheEntry,
  Cached,
  TieredCache,
  TieredCacheModule,
  type CacheEntryContext,
  type CacheableRequest,
} from '../../lib';
import { ManualClock } from '../support/manual-clock';

/** Handler calls, by handler. */
const calls: Record<string, number> = {};
const call = (name: string) => (calls[name] = (calls[name] ?? 0) + 1);

@Injectable()
class Offers {
  /** Shares its key with the `offer` handler: reads what the handler stored. */
  @Cached({ key: (id: string) => `offer:${id}`, ttl: 60_000 })
  async find(id: string): Promise<{ id: string; n: number }> {
    return { id, n: call('method') };
  }
}

@Controller()
class OffersController {
  /** `?live=1` offers change fast: the handler gives them a 500 ms entry; `?draft=1` are not kept. */
  @Get('offers/:id')
  @Cached({ key: (req: CacheableRequest) => `offer:${req.url}`, ttl: 60_000 })
  offer(
    @Param('id') id: string,
    @Query('live') live: string | undefined,
    @Query('draft') draft: string | undefined,
    @CacheEntry() entry: CacheEntryContext,
  ) {
    if (live) entry.setTtl(500);
    if (draft) entry.skip();
    return { id, n: call(`offer ${id}`) };
  }

  @Get('shared/:id')
  @Cached({ key: (req: CacheableRequest) => `offer:${req.params.id}`, ttl: 60_000 })
  shared(@Param('id') id: string) {
    return { id, n: call('shared') };
  }

  @Get('users/:id')
  @Cached({ ttl: 60_000, cacheEmpty: { ttl: 1000, errors: [NotFoundException] } })
  user(@Param('id') id: string) {
    call('user');
    throw new NotFoundException(`no user ${id}`);
  }

  /** Not cached: its @CacheEntry() is a context that changes nothing. */
  @Get('plain')
  plain(@CacheEntry() entry: CacheEntryContext) {
    entry.setTtl(1);
    return { n: call('plain') };
  }
}

describe('adaptive entries and negative caching on @Cached() handlers (Express)', () => {
  let app: INestApplication;
  let clock: ManualClock;

  beforeEach(async () => {
    for (const k of Object.keys(calls)) delete calls[k];
    clock = new ManualClock();
    const ref = await Test.createTestingModule({
      imports: [TieredCacheModule.forRoot({ tiers: [{ type: 'memory' }], clock })],
      controllers: [OffersController],
      providers: [Offers],
    }).compile();
    app = ref.createNestApplication({ logger: false });
    await app.init();
  });
  afterEach(() => app.close());

  const get = (path: string) => request(app.getHttpServer()).get(path);

  it('@CacheEntry(): the handler sets its entry TTL from the request and result, or skips it', async () => {
    for (const path of ['/offers/1', '/offers/2?live=1', '/offers/3?draft=1']) {
      expect((await get(path)).headers['x-cache']).toBe('MISS');
    }
    expect((await get('/offers/3?draft=1')).headers['x-cache']).toBe('MISS'); // not stored
    clock.advance(1000); // past the live offer's 500 ms, far within 60 s
    expect((await get('/offers/1')).headers['x-cache']).toBe('HIT');
    expect((await get('/offers/2?live=1')).headers['x-cache']).toBe('MISS');
    expect(calls).toEqual({ 'offer 1': 1, 'offer 2': 2, 'offer 3': 2 });
  });

  it('cacheEmpty: a NotFoundException is answered 404 from the cache until its ttl', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await get('/users/9');
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ message: 'no user 9' });
    }
    expect(calls.user).toBe(1);
    clock.advance(1001);
    expect((await get('/users/9')).status).toBe(404);
    expect(calls.user).toBe(2);
  });

  it('a method sharing a key with a handler reads the body the handler stored', async () => {
    const first = await get('/shared/5');
    expect(first.body).toEqual({ id: '5', n: 1 });
    expect(await app.get(Offers).find('5')).toEqual({ id: '5', n: 1 });
    expect(await app.get(TieredCache).getOrSet('offer:5', () => 'computed')).toEqual({
      id: '5',
      n: 1,
    });
    expect(calls).toEqual({ shared: 1 });
  });

  it('a handler that is not cached gets a @CacheEntry() context that changes nothing', async () => {
    expect((await get('/plain')).body).toEqual({ n: 1 });
    expect((await get('/plain')).body).toEqual({ n: 2 });
  });
});
