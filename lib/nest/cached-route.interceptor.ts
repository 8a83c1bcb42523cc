import {
  type CallHandler,
  type ExecutionContext,
  Injectable,
  Logger,
  type NestInterceptor,
  UseInterceptors,
} from '@nestjs/common';
import { INTERCEPTORS_METADATA } from '@nestjs/common/constants';
import { ModuleRef } from '@nestjs/core';
import type { Observable } from 'rxjs';
import { TieredCacheInterceptor } from './tiered-cache.interceptor';

/**
 * What `@Cached()` and `@CacheEvict()` bind to the handlers they decorate, in place of a global
 * interceptor: Nest runs its interceptor pipeline (an Observable, a deferred call, an execution
 * context: about as much CPU as a whole cache hit) only for routes that have interceptors, so a
 * global one would cost every route of the app, cached or not. Nest builds this class in the
 * decorated controller's module, which need not import `TieredCacheModule`: it hands each request
 * to the application's `TieredCacheInterceptor`, found once. Without the module in the
 * application (a unit test of a controller, say), handlers run uncached, with one warning.
 */
@Injectable()
export class CachedRouteInterceptor implements NestInterceptor {
  /** The application's interceptor; `null` once looked for and not found. */
  private target: TieredCacheInterceptor | null | undefined;

  constructor(private readonly moduleRef: ModuleRef) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (this.target === undefined) this.target = this.find();
    return this.target === null ? next.handle() : this.target.intercept(context, next);
  }

  private find(): TieredCacheInterceptor | null {
    try {
      return this.moduleRef.get(TieredCacheInterceptor, { strict: false });
    } catch {
      new Logger('TieredCache').warn(
        '@Cached() and @CacheEvict() handlers run uncached: TieredCacheModule is not imported in this application',
      );
      return null;
    }
  }
}

const bindRoute = UseInterceptors(CachedRouteInterceptor);

/**
 * `metadata` (a method decorator) that also binds {@link CachedRouteInterceptor} to the method,
 * once however many of the module's decorators it has. On a provider method the binding does
 * nothing: Nest applies interceptors to controllers (and resolvers and message handlers, which
 * the interceptor passes through), and the module wraps provider methods itself.
 */
export function routeDecorator(metadata: MethodDecorator) {
  return (target: object, key: string | symbol, descriptor: PropertyDescriptor): void => {
    metadata(target, key, descriptor);
    const bound: unknown[] = Reflect.getMetadata(INTERCEPTORS_METADATA, descriptor.value) ?? [];
    if (!bound.includes(CachedRouteInterceptor)) bindRoute(target, key, descriptor);
  };
}
