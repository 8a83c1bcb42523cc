import 'reflect-metadata';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Controller, Get, type INestApplication, Req, Res } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { Cached, TieredCacheModule, type TieredCacheModuleOptions } from '../../lib';
import { uniqueName } from '../harness/env';

/**
 * The default key of a `@Cached()` handler against hostile URLs and headers, on Express and
 * Fastify: a response is only ever served for the resource (handler, parameters, query, host)
 * that produced it. Memory tier only: the key is what is under test, not the tiers.
 */

type Platform = 'express' | 'fastify';

let calls = 0;
interface Req {
  params: Record<string, string>;
  query: unknown;
  headers: Record<string, string | string[] | undefined>;
}
const answer = (handler: string, req: Req) => ({
  handler,
  params: req.params,
  query: req.query,
  n: ++calls,
});

/** The app's controllers, with each router's wildcard syntax. */
function controllers(platform: Platform) {
  const wildcard = (name: string) => (platform === 'express' ? `*${name}` : '*');

  @Controller()
  class RoutesController {
    @Get('item/:id')
    @Cached()
    item(@Req() req: Req) {
      return answer('item', req);
    }

    @Get(`files/${wildcard('path')}`)
    @Cached()
    files(@Req() req: Req) {
      return answer('files', req);
    }

    @Get('docs/:name')
    @Cached()
    docs(@Req() req: Req) {
      return answer('docs', req);
    }

    @Get('echo')
    @Cached()
    echo(@Req() req: Req) {
      return answer('echo', req);
    }

    @Get('whoami')
    @Cached()
    whoami(@Req() req: Req) {
      const { host, cookie, authorization } = req.headers;
      const secret = req.headers['x-api-key'] ?? req.headers['proxy-authorization'];
      return { host, cookie, authorization, secret, n: ++calls };
    }

    @Get('lang')
    @Cached({ vary: ['accept-language'] })
    lang(@Res({ passthrough: true }) res: { header(name: string, value: string): void }) {
      res.header('Vary', 'Origin');
      return { n: ++calls };
    }

    @Get('pair')
    @Cached({ vary: ['x-a', 'x-b'] })
    pair(@Req() req: Req) {
      return { a: req.headers['x-a'], b: req.headers['x-b'], n: ++calls };
    }
  }

  /** Registered last: the catch-all route of a single-page app. */
  @Controller()
  class FallbackController {
    @Get(wildcard('rest'))
    @Cached()
    fallback(@Req() req: Req) {
      return answer('fallback', req);
    }
  }

  return [RoutesController, FallbackController];
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown> | undefined;
}

describe.each<Platform>(['express', 'fastify'])('@Cached handler keys (%s)', (platform) => {
  let app: INestApplication;
  let port: number;

  async function start(options: Partial<TieredCacheModuleOptions> = {}): Promise<void> {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TieredCacheModule.forRoot({
          namespace: uniqueName('keys'),
          tiers: [{ type: 'memory', ttl: 60_000 }],
          ttl: 60_000,
          ...options,
        }),
      ],
      controllers: controllers(platform),
    }).compile();
    app =
      platform === 'express'
        ? moduleRef.createNestApplication({ logger: false })
        : moduleRef.createNestApplication(new FastifyAdapter(), { logger: false });
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as AddressInfo).port;
  }

  afterEach(async () => {
    await app?.close();
  });

  /** Sends `path` byte for byte (no client-side normalisation). */
  function get(path: string, headers: Record<string, string> = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, path, method: 'GET', headers, agent: false },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => {
            let body: Record<string, unknown> | undefined;
            try {
              body = JSON.parse(text) as Record<string, unknown>;
            } catch {
              body = undefined;
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
          });
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  /**
   * The resource a reply is: which handler answered, with which parameters and query (less `zz`,
   * the marker the tests add to keep their cases apart).
   */
  function resource(reply: Reply): string {
    if (reply.status !== 200) return `status ${reply.status}`;
    const { handler, params, query } = reply.body ?? {};
    const { zz: _marker, ...rest } = (query ?? {}) as Record<string, unknown>;
    return JSON.stringify([handler, params, rest]);
  }

  const withQuery = (path: string, query: string) =>
    `${path}${path.includes('?') ? '&' : '?'}${query}`;

  let probes = 0;
  /** What the router really does with `path`, asked with a fresh marker: never from the cache. */
  async function truth(path: string): Promise<string> {
    const reply = await get(withQuery(path, `zz=t${++probes}`));
    expect(reply.headers['x-cache']).not.toBe('HIT');
    return resource(reply);
  }

  const hostile = [
    '/files/../item/7',
    '/files/%2e%2e/item/7',
    '/files/%2E%2E/item/7',
    '/files/%2e%2E/item/7',
    '/files/.%2e/item/7',
    '/files/%2e./item/7',
    '/files/./../item/7',
    '/files/x/../../item/7',
    '/files/..\\item\\7',
    '/files\\..\\item\\7',
    '/files/%2e%2e\\item/7',
    '/files//../item/7',
    '/files/..%2fitem%2f7',
    '/files/..%2Fitem%2F7',
    '/files/%2fitem/7',
    '/files/%252e%252e/item/7',
    '//evil.example/item/7',
    '//item/7',
    '/item/8/../7',
    '/item/8/%2e%2e/7',
    '/item/7/..',
    '/item/7/',
    '/item//7',
    '/ITEM/7',
    '/docs/%2e%2e',
    '/docs/..%2f..%2fitem%2f7',
  ];

  it('never serves one resource to a caller of another, whatever the path', async () => {
    await start();
    const failures: string[] = [];
    for (const [i, attack] of hostile.entries()) {
      // The path the old key was built from: the URL resolved as a browser would.
      const victim = new URL(attack, 'http://localhost').pathname;
      const [attackIs, victimIs] = [await truth(attack), await truth(victim)];
      // The attacker first, then a normal caller: the caller gets its own resource.
      await get(withQuery(attack, `zz=p${i}`));
      const served = resource(await get(withQuery(victim, `zz=p${i}`)));
      if (served !== victimIs)
        failures.push(`${victim} after ${attack}: ${served}, not ${victimIs}`);
      // The normal caller first, then the attacker: the attacker gets what the router chose.
      await get(withQuery(victim, `zz=q${i}`));
      const got = resource(await get(withQuery(attack, `zz=q${i}`)));
      if (got !== attackIs) failures.push(`${attack} after ${victim}: ${got}, not ${attackIs}`);
    }
    expect(failures).toEqual([]);
  });

  it('keeps query strings apart that the handler reads differently', async () => {
    await start();
    const pairs: [string, string][] = [
      ['/echo?q=%FF', '/echo?q=%FE'],
      ['/echo?a=1&%61=2', '/echo?%61=2&a=1'],
      ['/echo?b=1#&c=2', '/echo?c=2&b=1#'],
      ['/echo?a[]=1&a=2', '/echo?a=2&a[]=1'],
      ['/echo?a+b=1&a%20b=2', '/echo?a%20b=2&a+b=1'],
    ];
    for (const [first, second] of pairs) {
      const expected = await truth(second);
      await get(first);
      expect([second, resource(await get(second))]).toEqual([second, expected]);
    }
    // Parameters of different plain names are still sorted: one entry.
    const before = calls;
    await get('/echo?y=2&x=1');
    const again = await get('/echo?x=1&y=2');
    expect([again.headers['x-cache'], calls - before]).toEqual(['HIT', 1]);
  });

  it.each(['Proxy-Authorization', 'X-Api-Key', 'Authorization', 'Cookie'])(
    'never caches a request carrying %s by default',
    async (header) => {
      await start();
      const first = await get('/whoami', { [header]: 'alice-secret' });
      expect(first.headers['x-cache']).toBe('BYPASS');
      const next = await get('/whoami');
      expect(next.headers['x-cache']).toBe('MISS');
      expect(JSON.stringify(next.body)).not.toContain('alice-secret');
    },
  );

  it('takes the private request headers from the module option', async () => {
    await start({ privateHeaders: ['x-tenant-token'] });
    expect((await get('/whoami', { 'X-Tenant-Token': 't1' })).headers['x-cache']).toBe('BYPASS');
    expect((await get('/whoami')).headers['x-cache']).toBe('MISS');
    // Replaced, not merged: a cookie is no longer private here.
    expect((await get('/whoami', { Cookie: 'a=1' })).headers['x-cache']).toBe('HIT');
  });

  it('rejects a private header that is not a header name', async () => {
    await expect(start({ privateHeaders: ['x api key'] })).rejects.toThrow(
      'privateHeaders[0]: "x api key" is not an HTTP header name',
    );
  });

  it('rejects a vary entry that is not a header name', () => {
    expect(() => Cached({ vary: ['accept-language', 'x a'] })).toThrow(
      '@Cached().vary[1]: "x a" is not an HTTP header name',
    );
    expect(() => Cached({ vary: 'accept' as never })).toThrow(
      '@Cached().vary: must be a list of header names, got string',
    );
  });

  it('never shares entries between virtual hosts', async () => {
    await start();
    const a = await get('/whoami', { Host: 'a.example' });
    const b = await get('/whoami', { Host: 'b.example' });
    expect([a.body?.host, b.body?.host, b.headers['x-cache']]).toEqual([
      'a.example',
      'b.example',
      'MISS',
    ]);
    const forwarded = await get('/whoami', { Host: 'a.example', 'X-Forwarded-Host': 'c.example' });
    expect(forwarded.headers['x-cache']).toBe('MISS');
    expect((await get('/whoami', { Host: 'a.example' })).headers['x-cache']).toBe('HIT');
    // The host name as the router matches it: the port does not count.
    expect((await get('/whoami', { Host: 'a.example:8080' })).headers['x-cache']).toBe('HIT');
    expect((await get('/whoami', { Host: 'A.example' })).headers['x-cache']).toBe('MISS');
  });

  it('keeps vary headers apart, however their values are spelled', async () => {
    await start();
    const first = await get('/pair', { 'X-A': '1 x-b=2', 'X-B': '' });
    const second = await get('/pair', { 'X-A': '1', 'X-B': '2 x-b=' });
    expect([second.headers['x-cache'], second.body?.a, first.body?.a]).toEqual([
      'MISS',
      '1',
      '1 x-b=2',
    ]);
  });

  it('answers with a Vary header naming the vary headers, on a MISS and a HIT', async () => {
    await start();
    const miss = await get('/lang', { 'Accept-Language': 'en' });
    const hit = await get('/lang', { 'Accept-Language': 'en' });
    expect([miss.headers['x-cache'], hit.headers['x-cache']]).toEqual(['MISS', 'HIT']);
    expect(miss.headers.vary).toBe('Origin, accept-language');
    expect(hit.headers.vary).toBe('accept-language');
  });
});
