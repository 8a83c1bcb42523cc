import 'reflect-metadata';
import { CacheInterceptor, CacheModule } from '@nestjs/cache-manager';
import {
  type CallHandler,
  Controller,
  type ExecutionContext,
  Get,
  Injectable,
  Module,
  type NestInterceptor,
  Param,
  UseInterceptors,
} from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Cached, TieredCacheModule } from '../lib';
import { serveApp } from './http-apps';

/**
 * One Nest Express app of `http-hit.bench.ts`, in a process of its own (BENCH_HTTP_APP names
 * it), serving `GET /product/:id`: about 1 KB of JSON, cached for 10 minutes. Sends its port to
 * the parent, then waits for `close`.
 */
export type HttpApp =
  | 'cache-interceptor'
  | 'cache-interceptor-ours'
  | 'cached'
  | 'uncached'
  | 'uncached-module'
  | 'noop-interceptor';

const TTL = 10 * 60_000;

/** About 1 KB of JSON per product. */
function product(id: string) {
  return {
    id,
    name: `Product ${id}`,
    description: 'x'.repeat(800),
    price: 199.99,
    tags: ['kitchen', 'coffee', 'espresso'],
    stock: 7,
  };
}

@Controller('product')
@UseInterceptors(CacheInterceptor)
class InterceptedController {
  @Get(':id')
  find(@Param('id') id: string) {
    return product(id);
  }
}

@Controller('product')
class CachedController {
  @Get(':id')
  @Cached({ ttl: TTL })
  find(@Param('id') id: string) {
    return product(id);
  }
}

/** No cache at all: the ceiling of any cache that answers through Nest's pipeline. */
@Controller('product')
class UncachedController {
  @Get(':id')
  find(@Param('id') id: string) {
    return product(id);
  }
}

const memory = { tiers: [{ type: 'memory' as const }], ttl: TTL, logErrors: false };

@Module({ imports: [CacheModule.register({ ttl: TTL })], controllers: [InterceptedController] })
class CacheInterceptorApp {}

@Module({ imports: [TieredCacheModule.forRoot(memory)], controllers: [InterceptedController] })
class CacheInterceptorOursApp {}

@Module({ imports: [TieredCacheModule.forRoot(memory)], controllers: [CachedController] })
class CachedApp {}

@Module({ controllers: [UncachedController] })
class UncachedApp {}

/** The handler without `@Cached()`, in an app that imports the module: what importing costs it. */
@Module({ imports: [TieredCacheModule.forRoot(memory)], controllers: [UncachedController] })
class UncachedModuleApp {}

/** An interceptor that does nothing: what Nest's interceptor pipeline costs by itself. */
@Injectable()
class NoopInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler) {
    return next.handle();
  }
}

@Module({
  controllers: [UncachedController],
  providers: [{ provide: APP_INTERCEPTOR, useClass: NoopInterceptor }],
})
class NoopInterceptorApp {}

const MODULES = {
  'cache-interceptor': CacheInterceptorApp,
  'cache-interceptor-ours': CacheInterceptorOursApp,
  cached: CachedApp,
  uncached: UncachedApp,
  'uncached-module': UncachedModuleApp,
  'noop-interceptor': NoopInterceptorApp,
};

serveApp(MODULES[process.env.BENCH_HTTP_APP as HttpApp]);
