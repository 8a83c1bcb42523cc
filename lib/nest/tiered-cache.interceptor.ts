import {
  type CallHandler,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
  Optional,
  StreamableFile,
} from '@nestjs/common';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import { type Observable, from, lastValueFrom, mergeMap } from 'rxjs';
import { Readable } from 'node:stream';
import { cachedKey, evictKeys, getOrSetOptions, readCachedCall } from './cached-call';
import type { CachedOptions } from './cached.decorator';
import type { CacheableRequest } from './decorated-method';
import { X_CACHE_HEADER } from './tiered-cache.constants';
import { TieredCache } from './tiered-cache.service';

/** The parts of Express responses and Fastify replies this interceptor reads. */
interface HttpResponse {
  statusCode: number;
  getHeader(name: string): unknown;
}

const DEFAULT_METHODS = ['GET', 'HEAD'];

/**
 * Applies `@Cached()` and `@CacheEvict()` to controller handlers (registered globally by the
 * module; handlers without that metadata pass straight through). HTTP semantics:
 * - only GET and HEAD by default; the default key is method + path + sorted query + `vary` headers;
 * - never caches a request carrying `Authorization` or `Cookie` (unless `authorized`), a response
 *   that sets a cookie, a non-2xx response or a stream;
 * - concurrent requests for one key share one handler call, across processes too;
 * - sets `X-Cache: HIT | MISS | STALE`.
 *
 * Works with the Express and Fastify adapters. Extension points are `protected`.
 */
@Injectable()
export class TieredCacheInterceptor implements NestInterceptor {
  constructor(
    protected readonly cache: TieredCache,
    protected readonly reflector: Reflector,
    @Optional() protected readonly adapterHost?: HttpAdapterHost,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const call = readCachedCall(this.reflector, context.getHandler());
    if (!call || context.getType() !== 'http') return next.handle();
    const { cached, evict } = call;
    const request = context.switchToHttp().getRequest<CacheableRequest>();
    let result$ = cached ? this.cached(context, next, request, cached) : next.handle();
    if (evict) {
      result$ = result$.pipe(
        mergeMap(async (result) => {
          await this.cache.del(evictKeys(evict, [request]));
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
    if (!this.isRequestCacheable(context, options)) return next.handle();
    const key = this.trackBy(context, options);
    if (key === undefined) return next.handle();
    const response = context.switchToHttp().getResponse<HttpResponse>();
    let ranHere = false;
    const handle = () => lastValueFrom(next.handle(), { defaultValue: undefined });
    return from(
      (async () => {
        const outcome = await this.cache.lookup(
          key,
          async () => {
            ranHere = true;
            return handle();
          },
          getOrSetOptions(options, [request], (result) =>
            this.isResponseCacheable(context, result),
          ),
        );
        if (outcome.status === 'MISS' && !ranHere && !outcome.stored) {
          // Joined a call whose response was not cacheable (it may belong to that caller alone):
          // this request gets its own.
          this.setXCache(response, 'MISS');
          return handle();
        }
        this.setXCache(response, outcome.status);
        return outcome.value;
      })(),
    );
  }

  /** Whether this request may be answered from, or stored into, the cache. */
  protected isRequestCacheable(context: ExecutionContext, options: CachedOptions): boolean {
    const request = context.switchToHttp().getRequest<CacheableRequest>();
    const method = (request.method ?? 'GET').toUpperCase();
    if (!(options.methods ?? DEFAULT_METHODS).includes(method)) return false;
    if (!options.authorized && (request.headers.authorization || request.headers.cookie))
      return false;
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
   * The cache key of a request: `@Cached({ key })`, else method + path + sorted query + `vary`
   * headers; `undefined` when the adapter gives no URL (the request is then not cached).
   */
  protected trackBy(context: ExecutionContext, options: CachedOptions): string | undefined {
    const request = context.switchToHttp().getRequest<CacheableRequest>();
    return cachedKey(options, [request, context], () => this.defaultKey(request, options));
  }

  /** Method + path + sorted query + `vary` headers, or `undefined` without a request URL. */
  private defaultKey(request: CacheableRequest, options: CachedOptions): string | undefined {
    const rawUrl: string | undefined = this.adapterHost?.httpAdapter?.getRequestUrl?.(request);
    if (!rawUrl) return undefined;
    const url = new URL(rawUrl, 'http://localhost');
    url.searchParams.sort();
    const query = url.searchParams.toString();
    let key = `${(request.method ?? 'GET').toUpperCase()} ${url.pathname}${query ? `?${query}` : ''}`;
    for (const header of options.vary ?? []) {
      const value = request.headers[header.toLowerCase()];
      key += ` ${header.toLowerCase()}=${Array.isArray(value) ? value.join(',') : (value ?? '')}`;
    }
    return key;
  }

  private setXCache(response: HttpResponse, status: string): void {
    const adapter = this.adapterHost?.httpAdapter;
    if (adapter) adapter.setHeader(response, X_CACHE_HEADER, status);
  }
}
