import { Module } from '@nestjs/common';
import { APP_INTERCEPTOR, DiscoveryModule } from '@nestjs/core';
import { CACHE_MANAGER } from '@nestjs/cache-manager';
import { createCache } from 'cache-manager';
import { createTieredKeyv } from '../store/keyv-adapter';
import { TieredStore } from '../store/tiered-store';
import { CachedMethodsExplorer } from './cached-methods.explorer';
import { ConfigurableModuleClass, TIERED_CACHE_OPTIONS } from './tiered-cache.module-definition';
import type { TieredCacheModuleOptions } from './tiered-cache.options';
import { TieredCacheInterceptor } from './tiered-cache.interceptor';
import { TieredCache } from './tiered-cache.service';

/**
 * `TieredCacheModule.forRoot(options)` / `forRootAsync({ imports, useFactory, inject, useClass,
 * useExisting })`, `isGlobal` like `@nestjs/cache-manager`. Provides:
 * - `CACHE_MANAGER` (the very token of `@nestjs/cache-manager`): a cache-manager `Cache` over the
 *   tiered store, so `@Inject(CACHE_MANAGER)`, `CacheInterceptor`, `@CacheKey()` and `@CacheTTL()`
 *   keep working;
 * - `TieredCache`, the richer service, and `TieredStore`, the tier chain itself;
 * - `@Cached()` / `@CacheEvict()` on controller handlers (a global interceptor) and on provider
 *   methods (wrapped at bootstrap).
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    {
      provide: TieredStore,
      useFactory: (options: TieredCacheModuleOptions) => new TieredStore(options),
      inject: [TIERED_CACHE_OPTIONS],
    },
    {
      provide: CACHE_MANAGER,
      useFactory: (store: TieredStore) => createCache({ stores: [createTieredKeyv(store)] }),
      inject: [TieredStore],
    },
    TieredCache,
    CachedMethodsExplorer,
    TieredCacheInterceptor,
    { provide: APP_INTERCEPTOR, useExisting: TieredCacheInterceptor },
  ],
  exports: [TieredStore, TieredCache, CACHE_MANAGER, TieredCacheInterceptor],
})
export class TieredCacheModule extends ConfigurableModuleClass {}
