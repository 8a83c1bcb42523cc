import {
  type CallHandler,
  type ExecutionContext,
  Inject,
  Injectable,
  type NestInterceptor,
  Optional,
  StreamableFile,
} from '@nestjs/common';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import { type Observable, from, lastValueFrom, mergeMap, of, tap, throwError } from 'rxjs';
import type { CacheLookup } from '../herd/read-through';
import { Readable } from 'node:stream';
import { systemClock } from '../clock';
import {
  cachedKey,
  cachedTags,
  evict,
  headerNames,
  readCachedCall,
  readThroughCall,
  type CachedCall,
} from './cached-call';
import type { CachedOptions } from './cached.decorator';
import {
  checkHttpOptions,
  ConditionalGet,
  entryBody,
  httpEntry,
  httpSettings,
  type CachedHttpOptions,
  type HttpResponse,
  type HttpSettings,
} from './conditional-get';
import type { CacheableRequest } from './decorated-method';
import { X_CACHE_HEADER } from './tiered-cache.constants';
import { bindEntryContext } from './cache-entry.decorator';
import { TIERED_CACHE_OPTIONS } from './tiered-cache.module-definition';
import { DEFAULT_PRIVATE_HEADERS, type TieredCacheModuleOptions } from './tiered-cache.options';
import { TieredCache } from './tiered-cache.service';

/**
 * How the interceptor caches one `@Cached()` handler, worked out once: its options with
 * `condition` seeing the handler's result (not the stored entry), and its HTTP settings.
 */
interface HandlerCaching {
  stored: CachedOptions;
  http: HttpSettings;
}

const DEFAULT_METHODS = ['GET', 'HEAD'];

/** Beyond this many parameters a query is kept in received order (parsers cap the count). */
const MAX_SORTED_PARAMETERS = 100;
/** A parameter name that every query parser reads alike: no escapes, `+`, brackets nor dots. */
const PLAIN_NAME = /^[A-Za-z0-9_~-]*$/;

/**
 * The request target of a key: the path exactly as received (never decoded nor normalised, so
 * `/files/../item/7` and `/item/7` stay apart, as the router kept them), then the query with
 * its parameters sorted by name when that cannot change what the handler reads: every name is
 * plain, there are at most {@link MAX_SORTED_PARAMETERS}, no `#`; parameters of one name keep
 * their order. Any other query is kept as received.
 */
export function requestTarget(rawUrl: string): string {
  const mark = rawUrl.indexOf('?');
  if (mark < 0) return rawUrl;
  const query = rawUrl.slice(mark + 1);
  const parameters = query.split('&');
  if (query.includes('#') || parameters.length > MAX_SORTED_PARAMETERS) return rawUrl;
  const named = parameters.map((parameter) => ({ parameter, name: parameter.split('=', 1)[0] }));
  if (!named.every(({ name }) => PLAIN_NAME.test(name))) return rawUrl;
  named.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)); // stable
  return `${rawUrl.slice(0, mark)}?${named.map(({ parameter }) => parameter).join('&')}`;
}

/**
 * ` host="name"`: the `Host` (HTTP/2: `:authority`) without its port, as the router matches it
 * (`@Controller({ host })`) and as `request.hostname` gives it; `''` without one.
 */
function hostPart(request: CacheableRequest): string {
  const header = request.headers.host ?? request.headers[':authority'];
  if (typeof header !== 'string') return '';
  // Most requests of an app name one host: the last one's part is kept.
  if (header === lastHost.header) return lastHost.part;
  const end = header.startsWith('[') ? header.indexOf(']') + 1 : header.indexOf(':');
  const part = ` host=${JSON.stringify(end > 0 ? header.slice(0, end) : header)}`;
  lastHost.header = header;
  lastHost.part = part;
  return part;
}

const lastHost = { header: '', part: '' };

/** ` name="value"` for a request header in a key (JSON keeps any value unambiguous); `''` without it. */
function headerPart(request: CacheableRequest, name: string): string {
  const value = request.headers[name];
  return value === undefined ? '' : ` ${name}=${JSON.stringify(value)}`;
}

/**
 * Applies `@Cached()` and `@CacheEvict()` to controller handlers (registered globally by the
 * module; handlers without that metadata pass straight through). HTTP semantics:
 * - only GET and HEAD by default; the default key is the handler, the method, the raw path,
 *   the sorted query, the `Host` (and `X-Forwarded-Host`) and the `vary` headers;
 * - never caches a request carrying a private header (module option `privateHeaders`;
 *   `Authorization`, `Cookie`, `X-Api-Key`, … by default) unless `authorized`, a response that
 *   sets a cookie, a non-2xx response or a stream;
 * - names the `vary` headers in the response's `Vary`;
 * - concurrent requests for one key share one handler call, across processes too;
 * - tags the entry with `@Cached({ tags })`; `@CacheEvict()` deletes its keys and invalidates its
 *   tags once the handler has succeeded;
 * - keeps the status the handler answered with, sends a strong `ETag` and answers a GET or HEAD
 *   whose `If-None-Match` names it `304 Not Modified` from the cache (see `ConditionalGet`);
 *   `Cache-Control` and `Age` with the `http` option;
 * - sets `X-Cache: HIT | MISS | STALE`, and `BYPASS` on a request it does not cache.
 *
 * Works with the Express and Fastify adapters. Extension points are `protected`.
 */
@Injectable()
export class TieredCacheInterceptor implements NestInterceptor {
  /** The request headers that make a request private (module option `privateHeaders`). */
  protected readonly privateHeaders: readonly string[];
  /** Each handler's metadata (`null`: neither decorator), read once: it does not change. */
  private readonly calls = new WeakMap<object, CachedCall | null>();
  /** Each `@Cached()` options' caching (see {@link HandlerCaching}). */
  private readonly cachings = new WeakMap<CachedOptions, HandlerCaching>();
  /** The module's `http` option: the default of every handler's. */
  private readonly http: CachedHttpOptions | undefined;
  private readonly conditional: ConditionalGet;

  constructor(
    protected readonly cache: TieredCache,
    protected readonly reflector: Reflector,
    @Optional() protected readonly adapterHost?: HttpAdapterHost,
    @Optional() @Inject(TIERED_CACHE_OPTIONS) moduleOptions?: TieredCacheModuleOptions,
  ) {
    this.privateHeaders = headerNames(
      'privateHeaders',
      moduleOptions?.privateHeaders,
      DEFAULT_PRIVATE_HEADERS,
    );
    this.http = checkHttpOptions('http', moduleOptions?.http);
    const clock = (cache.store as TieredCache['store'] | undefined)?.opts.clock;
    this.conditional = new ConditionalGet(clock ?? systemClock);
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const handler = context.getHandler();
    let call = this.calls.get(handler);
    if (call === undefined)
      this.calls.set(handler, (call = readCachedCall(this.reflector, handler) ?? null));
    if (!call || context.getType() !== 'http') return next.handle();
    const { cached, evict: evicts } = call;
    const request = context.switchToHttp().getRequest<CacheableRequest>();
    let result$ = cached ? this.cached(context, next, request, cached) : next.handle();
    if (cached?.vary?.length) {
      const response = context.switchToHttp().getResponse<HttpResponse>();
      result$ = result$.pipe(tap(() => this.setVary(response, cached.vary ?? [])));
    }
    if (evicts) {
      result$ = result$.pipe(
        mergeMap(async (result) => {
          await evict(this.cache, evicts, [request]);
          return result;
        }),
      );
    }
    return result$;
  }

  private cached(
    context: ExecutionContext,
    next: CallHandler,
    request: CacheableRequest,
    options: CachedOptions,
  ): Observable<unknown> {
    const response = context.switchToHttp().getResponse<HttpResponse>();
    const key = this.isRequestCacheable(context, options)
      ? this.trackBy(context, options)
      : undefined;
    if (key === undefined) {
      this.setXCache(response, 'BYPASS');
      return next.handle();
    }
    const caching = this.cachingOf(options);
    let ranHere = false;
    const handle = () => lastValueFrom(next.handle(), { defaultValue: undefined });
    let found: CacheLookup<unknown> | Promise<CacheLookup<unknown>>;
    try {
      const tags = cachedTags(options, [request, context]);
      found = this.cache.lookupNow(
        key,
        async (entry) => {
          ranHere = true;
          bindEntryContext(request, entry);
          return this.toEntry(context, response, await handle(), caching.http);
        },
        readThroughCall(this.cache, caching.stored, [request], tags, (stored) =>
          this.isResponseCacheable(context, entryBody(stored)),
        ),
      );
    } catch (err) {
      return throwError(() => err);
    }
    if (!(found instanceof Promise)) {
      // A fresh memory-tier hit: answered without a promise.
      return of(this.respond(request, response, found, caching));
    }
    return from(
      found.then((outcome) => {
        if (outcome.status === 'MISS' && !ranHere && !outcome.stored) {
          // Joined a call whose response was not cacheable (it may belong to that caller alone):
          // this request gets its own.
          this.setXCache(response, 'MISS');
          return handle();
        }
        return this.respond(request, response, outcome, caching);
      }),
    );
  }

  /** {@link HandlerCaching} of a `@Cached()` handler's options, worked out on first use. */
  private cachingOf(options: CachedOptions): HandlerCaching {
    let caching = this.cachings.get(options);
    if (caching === undefined) {
      const { condition } = options;
      // A spread: the options read-through takes (herd settings and the rest) all come along.
      const stored: CachedOptions = {
        ...options,
        condition: condition && ((value, ...args) => condition(entryBody(value), ...args)),
      };
      const http = httpSettings(options.http, this.http, options.authorized === true);
      this.cachings.set(options, (caching = { stored, http }));
    }
    return caching;
  }

  /**
   * What the cache stores of a handler's result: an `HttpEntry` (the body, the status, the
   * `ETag`), or the result itself when it is `undefined`, `null` or not cacheable (nothing to
   * hash, e.g. a stream).
   */
  private toEntry(
    context: ExecutionContext,
    response: HttpResponse,
    result: unknown,
    http: HttpSettings,
  ): unknown {
    if (result === undefined || result === null || !this.isResponseCacheable(context, result))
      return result;
    const status = typeof response.statusCode === 'number' ? response.statusCode : 200;
    return httpEntry(result, status, this.conditional.now(), http.etag);
  }

  /** Sets `X-Cache` and the HTTP headers of a lookup; the body to send (`undefined` for a 304). */
  private respond(
    request: CacheableRequest,
    response: HttpResponse,
    lookup: CacheLookup<unknown>,
    caching: HandlerCaching,
  ): unknown {
    this.setXCache(response, lookup.status);
    const adapter = this.adapterHost?.httpAdapter;
    if (!adapter) return entryBody(lookup.value);
    return this.conditional.respond(adapter, request, response, lookup, caching.http);
  }

  /** Whether this request may be answered from, or stored into, the cache. */
  protected isRequestCacheable(context: ExecutionContext, options: CachedOptions): boolean {
    const request = context.switchToHttp().getRequest<CacheableRequest>();
    const method = (request.method ?? 'GET').toUpperCase();
    if (!(options.methods ?? DEFAULT_METHODS).includes(method)) return false;
    if (options.authorized) return true;
    const headers = request.headers;
    for (const name of this.privateHeaders) if (headers[name] !== undefined) return false;
    return true;
  }

  /** Whether a handler's response may be stored: 2xx, no `Set-Cookie`, not a stream. */
  protected isResponseCacheable(context: ExecutionContext, result: unknown): boolean {
    if (result instanceof StreamableFile || result instanceof Readable) return false;
    const response = context.switchToHttp().getResponse<HttpResponse>();
    const status = response.statusCode;
    if (typeof status === 'number' && (status < 200 || status > 299)) return false;
    return !response.getHeader?.('set-cookie');
  }

  /**
   * The cache key of a request: `@Cached({ key })`, else the default key (see `defaultKey`);
   * `undefined` when the adapter gives no URL (the request is then not cached).
   */
  protected trackBy(context: ExecutionContext, options: CachedOptions): string | undefined {
    const request = context.switchToHttp().getRequest<CacheableRequest>();
    return cachedKey(options, [request, context], () => this.defaultKey(context, options));
  }

  /**
   * `Controller.handler:METHOD target host="…"` (the host name, without the port), then `x-forwarded-host` and the `vary` headers
   * the request has; the target is the raw path and sorted query (see {@link requestTarget}).
   * Naming the handler keeps handlers apart however the router picked them (path, `Host`,
   * version header); the raw path keeps apart what the handler reads; the `Host` keeps virtual
   * hosts apart. `undefined` without a request URL.
   */
  protected defaultKey(context: ExecutionContext, options: CachedOptions): string | undefined {
    const request = context.switchToHttp().getRequest<CacheableRequest>();
    const rawUrl: string | undefined = this.adapterHost?.httpAdapter?.getRequestUrl?.(request);
    if (!rawUrl) return undefined;
    const handler = `${context.getClass().name}.${context.getHandler().name}`;
    const method = (request.method ?? 'GET').toUpperCase();
    let key = `${handler}:${method} ${requestTarget(rawUrl)}`;
    key += hostPart(request);
    key += headerPart(request, 'x-forwarded-host');
    for (const header of options.vary ?? []) key += headerPart(request, header.toLowerCase());
    return key;
  }

  /** Adds the `vary` headers to the response's `Vary` (keeping what is there). */
  private setVary(response: HttpResponse, vary: readonly string[]): void {
    const adapter = this.adapterHost?.httpAdapter;
    if (!adapter) return;
    const current = response.getHeader?.('vary');
    const names = (Array.isArray(current) ? current.join(',') : String(current ?? ''))
      .split(',')
      .map((name) => name.trim())
      .filter(Boolean);
    if (names.includes('*')) return;
    const known = new Set(names.map((name) => name.toLowerCase()));
    for (const name of vary) {
      if (!known.has(name.toLowerCase())) names.push(name.toLowerCase());
      known.add(name.toLowerCase());
    }
    adapter.setHeader(response, 'Vary', names.join(', '));
  }

  private setXCache(response: HttpResponse, status: string): void {
    const adapter = this.adapterHost?.httpAdapter;
    if (adapter) adapter.setHeader(response, X_CACHE_HEADER, status);
  }
}
