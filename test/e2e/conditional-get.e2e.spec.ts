import 'reflect-metadata';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  Controller,
  Get,
  HttpCode,
  type INestApplication,
  type LoggerService,
  Post,
  Res,
} from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import {
  Cached,
  isHttpEntry,
  TieredCache,
  TieredCacheModule,
  type TieredCacheModuleOptions,
} from '../../lib';
import { uniqueName } from '../harness/env';
import { ManualClock } from '../support/manual-clock';

/**
 * Conditional GET on `@Cached()` handlers, on Express and Fastify: a strong `ETag` stored with
 * the entry, `If-None-Match` answered `304 Not Modified` from the cache without calling the
 * handler nor sending the body, `Cache-Control` / `Age` from the entry's TTL, the handler's
 * status kept on a hit, `X-Cache: BYPASS` on the requests the cache skips. Memory tier only, on
 * a manual clock.
 */

type Platform = 'express' | 'fastify';

/** Handler calls, by handler. */
const calls: Record<string, number> = {};
const call = (name: string) => (calls[name] = (calls[name] ?? 0) + 1);
/** What `/doc` answers: changed by the tests to make a new value. */
let docVersion = 1;

interface StatusResponse {
  status(code: number): void;
}

@Controller()
class DocsController {
  @Get('doc')
  @Cached({ key: 'doc', ttl: 60_000 })
  doc() {
    return { n: call('doc'), version: docVersion, text: 'x'.repeat(200) };
  }

  @Get('text')
  @Cached({ ttl: 60_000 })
  text() {
    call('text');
    return `plain text ${docVersion}`;
  }

  @Get('public')
  @Cached({ ttl: 60_000, http: { cacheControl: 'public' } })
  publicDoc() {
    return { n: call('public') };
  }

  @Get('short')
  @Cached({ ttl: 1_000, grace: 60_000, http: { cacheControl: 'public' } })
  short() {
    return { n: call('short') };
  }

  @Get('forever')
  @Cached({ ttl: 0, http: { cacheControl: 'private' } })
  forever() {
    return { n: call('forever') };
  }

  @Get('module-default')
  @Cached({ ttl: 30_000 })
  moduleDefault() {
    return { n: call('module-default') };
  }

  @Get('created')
  @Cached({ ttl: 60_000 })
  created(@Res({ passthrough: true }) res: StatusResponse) {
    res.status(201);
    return { n: call('created') };
  }

  @Get('partial')
  @Cached({ ttl: 60_000 })
  partial(@Res({ passthrough: true }) res: StatusResponse) {
    res.status(203);
    return { n: call('partial') };
  }

  @Get('no-etag')
  @Cached({ ttl: 60_000, http: { etag: false } })
  noEtag() {
    return { n: call('no-etag') };
  }

  @Get('odd')
  @Cached({ ttl: 60_000, condition: (result: { n: number }) => result.n % 2 === 1 })
  odd() {
    return { n: call('odd') };
  }

  @Get('nothing')
  @Cached({ key: 'nothing', ttl: 60_000 })
  nothing() {
    call('nothing');
    return null;
  }

  @Get('raw')
  @Cached({ key: 'raw-entry', ttl: 60_000 })
  raw() {
    return { n: call('raw') };
  }

  @Get('me')
  @Cached({
    ttl: 60_000,
    authorized: true,
    key: (req: { headers: Record<string, unknown> }) => `me:${String(req.headers.authorization)}`,
  })
  me() {
    return { n: call('me') };
  }

  @Get('lang')
  @Cached({ ttl: 60_000, vary: ['accept-language'] })
  lang() {
    return { n: call('lang') };
  }

  @Post('unsafe')
  @Cached({ ttl: 60_000 })
  unsafe() {
    return { n: call('unsafe') };
  }

  @Post('doc')
  @Cached({ ttl: 60_000, methods: ['POST'] })
  @HttpCode(200)
  post() {
    return { n: call('post') };
  }
}

/** Collects what the app logs as an error or a warning (e.g. "headers already sent"). */
class Recorder implements LoggerService {
  readonly problems: string[] = [];
  log(): void {}
  error(message: unknown, ...rest: unknown[]): void {
    this.problems.push(`error: ${String(message)} ${rest.map(String).join(' ')}`);
  }
  warn(message: unknown): void {
    this.problems.push(`warn: ${String(message)}`);
  }
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The body as received, byte for byte. */
  text: string;
}

describe.each<Platform>(['express', 'fastify'])('conditional GET (%s)', (platform) => {
  let app: INestApplication;
  let port: number;
  let clock: ManualClock;
  let logs: Recorder;

  async function start(options: Partial<TieredCacheModuleOptions> = {}): Promise<void> {
    clock = new ManualClock();
    logs = new Recorder();
    const moduleRef = await Test.createTestingModule({
      imports: [
        TieredCacheModule.forRoot({
          namespace: uniqueName('cond'),
          clock,
          tiers: [{ type: 'memory', ttl: 0 }],
          ...options,
        }),
      ],
      controllers: [DocsController],
    }).compile();
    app =
      platform === 'express'
        ? moduleRef.createNestApplication({ logger: logs })
        : moduleRef.createNestApplication(new FastifyAdapter(), { logger: logs });
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as AddressInfo).port;
  }

  beforeEach(() => {
    for (const name of Object.keys(calls)) delete calls[name];
    docVersion = 1;
  });

  afterEach(async () => {
    await app?.close();
    // No response was written twice, nor failed on its way out.
    expect(logs?.problems ?? []).toEqual([]);
  });

  function send(
    method: string,
    path: string,
    headers: Record<string, string> = {},
  ): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, path, method, headers, agent: false },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  }
  const get = (path: string, headers: Record<string, string> = {}) => send('GET', path, headers);
  /**
   * Whether a reply has a strong ETag of the cache's. (Express tags other responses itself with
   * a weak one, and answers `If-None-Match` against it: the tests that expect no tag of ours
   * send a tag that matches nothing.)
   */
  const ourTag = (reply: Reply) => /^"[A-Za-z0-9_-]{27}"$/.test(String(reply.headers.etag));

  it('answers If-None-Match with 304 from the cache: no body, the handler not called', async () => {
    await start();
    const miss = await get('/doc');
    expect([miss.status, miss.headers['x-cache']]).toEqual([200, 'MISS']);
    const etag = miss.headers.etag as string;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{27}"$/); // strong: no W/
    const hit = await get('/doc');
    expect([hit.status, hit.headers['x-cache'], hit.headers.etag]).toEqual([200, 'HIT', etag]);
    expect(JSON.parse(hit.text)).toEqual(JSON.parse(miss.text));

    const notModified = await get('/doc', { 'If-None-Match': etag });
    expect(notModified.status).toBe(304);
    expect(notModified.text).toBe('');
    expect(notModified.headers.etag).toBe(etag);
    expect(notModified.headers['x-cache']).toBe('HIT');
    expect(notModified.headers['content-length'] ?? '0').toBe('0');
    expect(calls.doc).toBe(1);
  });

  it('compares If-None-Match per RFC 9110: lists, weak tags, *; a miss sends the body', async () => {
    await start();
    const etag = (await get('/doc')).headers.etag as string;
    for (const field of [`"nope", ${etag}`, `W/${etag}`, `"a,b", W/"c" ,${etag}`, '*']) {
      const reply = await get('/doc', { 'If-None-Match': field });
      expect([field, reply.status, reply.text]).toEqual([field, 304, '']);
    }
    for (const field of ['"nope"', etag.slice(0, -2) + '"', `W/"x", "y"`, etag.slice(1, -1)]) {
      const reply = await get('/doc', { 'If-None-Match': field });
      expect([field, reply.status, reply.headers.etag]).toEqual([field, 200, etag]);
      expect(JSON.parse(reply.text)).toMatchObject({ n: 1 });
    }
    expect(calls.doc).toBe(1);
  });

  it('answers a HEAD with 304 too, but never another method', async () => {
    await start();
    const head = await send('HEAD', '/doc');
    expect([head.status, head.text]).toEqual([200, '']);
    const etag = head.headers.etag as string;
    expect(etag).toBeDefined();
    expect((await send('HEAD', '/doc', { 'If-None-Match': etag })).status).toBe(304);

    const post = await send('POST', '/doc');
    const again = await send('POST', '/doc', { 'If-None-Match': post.headers.etag as string });
    expect([again.status, again.headers['x-cache'], JSON.parse(again.text)]).toEqual([
      200,
      'HIT',
      { n: 1 },
    ]);
    expect(calls.post).toBe(1);
  });

  it('gives a changed value a new ETag; the old one then gets the new body', async () => {
    await start();
    const first = await get('/doc');
    const oldTag = first.headers.etag as string;
    docVersion = 2;
    await app.get(TieredCache).del('doc');
    const changed = await get('/doc', { 'If-None-Match': oldTag });
    expect([changed.status, changed.headers['x-cache']]).toEqual([200, 'MISS']);
    expect(JSON.parse(changed.text)).toMatchObject({ version: 2 });
    const newTag = changed.headers.etag as string;
    expect(newTag).toMatch(/^"[A-Za-z0-9_-]{27}"$/);
    expect(newTag).not.toBe(oldTag);
    expect((await get('/doc', { 'If-None-Match': newTag })).status).toBe(304);
    expect((await get('/doc', { 'If-None-Match': oldTag })).status).toBe(200);
    // The tag is the body's: a string body has its own, the same for the same text.
    const text = await get('/text');
    expect([text.text, text.headers.etag]).toEqual(['plain text 2', expect.any(String)]);
    expect(text.headers.etag).not.toBe(newTag);
    expect(calls.doc).toBe(2);
  });

  it('answers 304 when a recomputed value has the tag the client holds', async () => {
    await start();
    const etag = (await get('/text')).headers.etag as string;
    await app.get(TieredCache).clear();
    const again = await get('/text', { 'If-None-Match': etag });
    expect([again.status, again.text, again.headers['x-cache']]).toEqual([304, '', 'MISS']);
    expect(calls.text).toBe(2);
  });

  it('answers a STALE entry with 304 when its tag matches', async () => {
    await start();
    const etag = (await get('/short')).headers.etag as string;
    clock.advance(3_500); // stale for 2.5 s, within grace
    const stale = await get('/short', { 'If-None-Match': etag });
    expect([stale.status, stale.text, stale.headers['x-cache'], stale.headers.etag]).toEqual([
      304,
      '',
      'STALE',
      etag,
    ]);
    // A downstream cache sees it stale too: Age past max-age.
    expect([stale.headers['cache-control'], stale.headers.age]).toEqual(['public, max-age=1', '3']);
  });

  it('sends Cache-Control with max-age and Age from the entry, on 200 and 304', async () => {
    await start();
    const miss = await get('/public');
    expect([miss.headers['cache-control'], miss.headers.age]).toEqual([
      'public, max-age=60',
      undefined,
    ]);
    clock.advance(10_400);
    const hit = await get('/public');
    expect([hit.headers['x-cache'], hit.headers['cache-control'], hit.headers.age]).toEqual([
      'HIT',
      'public, max-age=60',
      '10',
    ]);
    const notModified = await get('/public', { 'If-None-Match': miss.headers.etag as string });
    expect([
      notModified.status,
      notModified.headers['cache-control'],
      notModified.headers.age,
    ]).toEqual([304, 'public, max-age=60', '10']);
    // An entry that never turns stale: revalidated on each use.
    expect((await get('/forever')).headers['cache-control']).toBe('private, no-cache');
    // None by default.
    const plain = await get('/doc');
    expect([plain.headers['cache-control'], plain.headers.age]).toEqual([undefined, undefined]);
    expect(calls.public).toBe(1);
  });

  it("takes the module's http option as every handler's default", async () => {
    await start({ http: { cacheControl: 'private' } });
    expect((await get('/module-default')).headers['cache-control']).toBe('private, max-age=30');
    clock.advance(2_000);
    const hit = await get('/module-default');
    expect([hit.headers['cache-control'], hit.headers.age]).toEqual(['private, max-age=30', '2']);
    // A handler's own setting wins.
    expect((await get('/public')).headers['cache-control']).toBe('public, max-age=60');
  });

  it('never sends Cache-Control: public for a handler keyed on an identity', async () => {
    await start({ http: { cacheControl: 'public' } });
    const alice = { Authorization: 'Bearer alice' };
    const miss = await get('/me', alice);
    const hit = await get('/me', alice);
    expect([miss.headers['x-cache'], hit.headers['x-cache']]).toEqual(['MISS', 'HIT']);
    expect([miss.headers['cache-control'], hit.headers['cache-control']]).toEqual([
      'private, max-age=60',
      'private, max-age=60',
    ]);
    expect(() =>
      Cached({ authorized: true, key: () => 'k', http: { cacheControl: 'public' } }),
    ).toThrow("@Cached().http.cacheControl: 'public' with authorized: true");
  });

  it.each([
    ['/created', 201],
    ['/partial', 203],
  ])('keeps the status %s answered with on a HIT and behind a 304', async (path, status) => {
    await start();
    const miss = await get(path);
    const hit = await get(path);
    expect([miss.status, hit.status, hit.headers['x-cache']]).toEqual([status, status, 'HIT']);
    expect(JSON.parse(hit.text)).toEqual({ n: 1 });
    expect((await get(path, { 'If-None-Match': hit.headers.etag as string })).status).toBe(304);
  });

  it('answers X-Cache: BYPASS on the requests it does not cache, without ETag', async () => {
    await start();
    await get('/doc'); // cached
    const skipped = await get('/doc', { Authorization: 'Bearer alice' });
    expect([skipped.status, skipped.headers['x-cache'], ourTag(skipped)]).toEqual([
      200,
      'BYPASS',
      false,
    ]);
    const withTag = await get('/doc', { Cookie: 'sid=1', 'If-None-Match': '"nope"' });
    expect([withTag.status, withTag.headers['x-cache']]).toEqual([200, 'BYPASS']);
    // A method the handler does not cache.
    await send('POST', '/unsafe');
    const post = await send('POST', '/unsafe');
    expect([post.status, post.headers['x-cache'], ourTag(post)]).toEqual([201, 'BYPASS', false]);
    expect([calls.doc, calls.unsafe]).toEqual([3, 2]);
  });

  it('with etag: false, sends no ETag and ignores If-None-Match', async () => {
    await start();
    const miss = await get('/no-etag');
    const hit = await get('/no-etag', { 'If-None-Match': '"nope"' });
    expect([hit.status, hit.headers['x-cache'], ourTag(miss), ourTag(hit)]).toEqual([
      200,
      'HIT',
      false,
      false,
    ]);
    expect(JSON.parse(hit.text)).toEqual({ n: 1 });
  });

  it('hands condition the handler result, and leaves null results unwrapped', async () => {
    await start();
    await get('/odd'); // n = 1: cached
    expect((await get('/odd')).headers['x-cache']).toBe('HIT');
    expect(calls.odd).toBe(1);

    const empty = await get('/nothing');
    expect(empty.status).toBe(200);
    const stored = await app.get(TieredCache).get('nothing');
    expect(isHttpEntry(stored)).toBe(false);
    const entry = await app.get(TieredCache).get('doc');
    expect(entry).toBeUndefined();
    await get('/doc');
    expect(await app.get(TieredCache).get('doc')).toMatchObject({
      $httpEntry: 1,
      body: { n: 1, version: 1 },
      status: 200,
      storedAt: clock.now(),
    });
  });

  it('serves an entry stored without the HTTP envelope as it is', async () => {
    await start();
    await app.get(TieredCache).set('raw-entry', { legacy: true }, 60_000);
    const hit = await get('/raw', { 'If-None-Match': '"nope"' });
    expect([hit.status, hit.headers['x-cache'], ourTag(hit)]).toEqual([200, 'HIT', false]);
    expect(JSON.parse(hit.text)).toEqual({ legacy: true });
    expect(calls.raw).toBeUndefined();
  });

  it('keeps Vary on a 304', async () => {
    await start();
    const first = await get('/lang', { 'Accept-Language': 'en' });
    const again = await get('/lang', {
      'Accept-Language': 'en',
      'If-None-Match': first.headers.etag as string,
    });
    expect([again.status, again.headers.vary]).toEqual([304, 'accept-language']);
  });

  it('refuses a bad http option, naming it', async () => {
    expect(() => Cached({ http: { cacheControl: 'shared' as never } })).toThrow(
      `@Cached().http.cacheControl: must be 'public', 'private' or false, got "shared"`,
    );
    expect(() => Cached({ http: { etags: true } as never })).toThrow(
      '@Cached().http.etags: unknown option (did you mean "etag"?)',
    );
    expect(() => Cached({ http: { etag: 'yes' as never } })).toThrow(
      '@Cached().http.etag: yes is not true or false',
    );
    expect(() => Cached({ http: 'public' as never })).toThrow(
      '@Cached().http: must be an object, got string',
    );
    await expect(start({ http: { cacheControl: true as never } })).rejects.toThrow(
      "http.cacheControl: must be 'public', 'private' or false, got boolean",
    );
    app = undefined as never;
  });
});
