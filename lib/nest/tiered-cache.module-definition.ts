import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { TieredCacheModuleOptions } from './tiered-cache.options';

/**
 * Nest's builder of `forRoot(options)` and `forRootAsync({ imports, useFactory, inject, useClass,
 * useExisting })`, with an `isGlobal` extra like `@nestjs/cache-manager`'s `register` (`true`
 * makes the module's providers global; default `false`). `TieredCacheModule` builds on it: the
 * `register` aliases, `extraProviders`, and options classes with either factory method.
 * `TIERED_CACHE_OPTIONS` is the token of the module's resolved options.
 */
export const { ConfigurableModuleClass, MODULE_OPTIONS_TOKEN: TIERED_CACHE_OPTIONS } =
  new ConfigurableModuleBuilder<TieredCacheModuleOptions>({ moduleName: 'TieredCache' })
    .setClassMethodName('forRoot')
    .setExtras({ isGlobal: false }, (definition, extras) => ({
      ...definition,
      global: extras.isGlobal,
    }))
    .build();
