import { type DynamicModule, Module, type Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { CACHE_MANAGER, Cache } from '@nestjs/cache-manager';
import { createCache } from 'cache-manager';
import { createTieredKeyv } from '../store/keyv-adapter';
import { TieredStore } from '../store/tiered-store';
import { CachedMethodsExplorer } from './cached-methods.explorer';
import { optionsFrom, type TieredCacheModuleAsyncOptions } from './tiered-cache.async-options';
import { ConfigurableModuleClass, TIERED_CACHE_OPTIONS } from './tiered-cache.module-definition';
import {
  MODULE_ONLY_OPTIONS,
  type TieredCacheModuleOptions,
  type TieredCacheModuleRootOptions,
} from './tiered-cache.options';
import { TieredCacheInterceptor } from './tiered-cache.interceptor';
import { TieredCache } from './tiered-cache.service';

/**
 * `TieredCacheModule.forRoot(options)` / `forRootAsync({ imports, useFactory, inject, useClass,
 * useExisting, extraProviders })`, `isGlobal`, and the same two as `register()` /
 * `registerAsync()`, so that an app written for `@nestjs/cache-manager` switches by renaming
 * `CacheModule` alone. Provides:
 * - `CACHE_MANAGER` (the very token of `@nestjs/cache-manager`): a cache-manager `Cache` over the
 *   tiered store, so `@Inject(CACHE_MANAGER)`, `CacheInterceptor`, `@CacheKey()` and `@CacheTTL()`
 *   keep working; the same instance under `@nestjs/cache-manager`'s `Cache` class token, so
 *   `constructor(private cache: Cache)` does too;
 * - `TieredCache`, the richer service, and `TieredStore`, the tier chain itself;
 * - `@Cached()` / `@CacheEvict()` on controller handlers (`TieredCacheInterceptor`, bound to the
 *   decorated handlers alone) and on provider methods (wrapped at bootstrap);
 * - with `metrics`, Prometheus metrics of the cache, registered at bootstrap and removed at
 *   shutdown (by `TieredCache`).
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    {
      provide: TieredStore,
      useFactory: (options: TieredCacheModuleOptions) =>
        new TieredStore(options, MODULE_ONLY_OPTIONS),
      inject: [TIERED_CACHE_OPTIONS],
    },
    {
      provide: CACHE_MANAGER,
      // The module's `ttl` is cache-manager's too, as `CacheModule.register({ ttl })` sets it: so
      // that `wrap(…, { raw: true })` computes the expiry of a new entry without a TTL of its own.
      useFactory: (store: TieredStore) =>
        createCache({ stores: [createTieredKeyv(store)], ttl: store.opts.ttl }),
      inject: [TieredStore],
    },
    { provide: Cache, useExisting: CACHE_MANAGER },
    TieredCache,
    CachedMethodsExplorer,
    TieredCacheInterceptor,
  ],
  exports: [TieredStore, TieredCache, CACHE_MANAGER, Cache, TieredCacheInterceptor],
})
export class TieredCacheModule extends ConfigurableModuleClass {
  /**
   * The module with these options (the tier engine's plus `failFast`, `logErrors`, `herd`,
   * `privateHeaders`, `metrics`; `isGlobal: true` makes it global). Without options: one memory
   * tier (which keeps an entry at most its own `ttl` cap, 5 s by default), no default TTL and no
   * metrics.
   */
  static override forRoot(options: TieredCacheModuleRootOptions = {}): DynamicModule {
    return super.forRoot(options);
  }

  /**
   * The module with options supplied at bootstrap: by `useFactory` (with `inject`), or by a class
   * (`useClass`, instantiated here; `useExisting`, an existing provider) implementing `create()` or
   * `@nestjs/cache-manager`'s `createCacheOptions()`. `extraProviders` are registered in the
   * module's scope; `isGlobal: true` makes it global.
   */
  static override forRootAsync(options: TieredCacheModuleAsyncOptions): DynamicModule {
    const { extraProviders, useClass, useExisting, ...rest } = options;
    const providers: Provider[] = [...(extraProviders ?? [])];
    const factoryClass = rest.useFactory === undefined ? (useExisting ?? useClass) : undefined;
    let definition: DynamicModule;
    if (factoryClass === undefined) {
      definition = super.forRootAsync(rest);
    } else {
      // Nest's builder would call one fixed method; ask the class for whichever it has instead.
      const path = useExisting !== undefined ? 'useExisting' : 'useClass';
      definition = super.forRootAsync({
        ...rest,
        useFactory: (factory: Parameters<typeof optionsFrom>[0]) => optionsFrom(factory, path),
        inject: [factoryClass],
      });
      if (path === 'useClass') providers.push({ provide: factoryClass, useClass: factoryClass });
    }
    return { ...definition, providers: [...(definition.providers ?? []), ...providers] };
  }

  /** `@nestjs/cache-manager`'s name for {@link forRoot}: the same module, the same options. */
  static register(options: TieredCacheModuleRootOptions = {}): DynamicModule {
    return this.forRoot(options);
  }

  /** `@nestjs/cache-manager`'s name for {@link forRootAsync}: the same module, the same options. */
  static registerAsync(options: TieredCacheModuleAsyncOptions): DynamicModule {
    return this.forRootAsync(options);
  }
}
