import type { FactoryProvider, ModuleMetadata, Provider, Type } from '@nestjs/common';
import { invalid } from '../options';
import type { TieredCacheModuleOptions } from './tiered-cache.options';

/** What an options factory returns: the module's options, now or later. */
type OptionsOrPromise = TieredCacheModuleOptions | Promise<TieredCacheModuleOptions>;

/**
 * A class that supplies the module's options to `forRootAsync({ useClass })` /
 * `forRootAsync({ useExisting })`: it implements `create()`, this module's own factory method.
 */
export interface TieredCacheOptionsFactory {
  /** The module's options (called once, at bootstrap). */
  create(): OptionsOrPromise;
}

/**
 * The options class of `@nestjs/cache-manager` (its `CacheOptionsFactory`), accepted as it is so
 * that a class written for `CacheModule.registerAsync({ useClass })` keeps working here.
 */
export interface CacheOptionsFactoryLike {
  /** The module's options (called once, at bootstrap). */
  createCacheOptions(): OptionsOrPromise;
}

/** A class accepted by `useClass` / `useExisting`: either factory method will do. */
export type TieredCacheOptionsClass = Type<TieredCacheOptionsFactory | CacheOptionsFactoryLike>;

/**
 * Options of `TieredCacheModule.forRootAsync()` (and of its alias `registerAsync()`), the same
 * forms as `@nestjs/cache-manager`'s `CacheModule.registerAsync()`. Exactly one of `useFactory`,
 * `useExisting` or `useClass` supplies the options; when several are given, `useFactory` wins,
 * then `useExisting`.
 */
export interface TieredCacheModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  /**
   * Returns the options (or a promise of them); its arguments are the providers named in
   * `inject`.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Nest's own `useFactory` type: its arguments are whatever `inject` names
  useFactory?: (...args: any[]) => OptionsOrPromise;
  /** The providers passed to `useFactory`, in order. */
  inject?: FactoryProvider['inject'];
  /**
   * A class that this module instantiates (with its own dependencies injected) and asks for the
   * options: it implements `create()` or `@nestjs/cache-manager`'s `createCacheOptions()`.
   */
  useClass?: TieredCacheOptionsClass;
  /**
   * Like `useClass`, but the instance is an existing provider, taken from `imports` (or from a
   * global module) instead of being created here.
   */
  useExisting?: TieredCacheOptionsClass;
  /**
   * Providers registered in this module's scope, e.g. the dependencies of a `useClass` class that
   * no imported module provides.
   * @default none
   */
  extraProviders?: Provider[];
  /**
   * Also passed to Nest's builder: the providers that `inject` names and no module exports.
   * @default none
   */
  provideInjectionTokensFrom?: Provider[];
  /**
   * Make the module global: its providers (`CACHE_MANAGER`, `Cache`, `TieredCache`…) can be
   * injected in every module without importing it.
   * @default false
   */
  isGlobal?: boolean;
}

/**
 * The options an instance of an options class supplies, whichever factory method it has; `path`
 * (`useClass` or `useExisting`) names the option in the error raised when it has neither.
 * @internal
 */
export function optionsFrom(
  factory: TieredCacheOptionsFactory | CacheOptionsFactoryLike,
  path: 'useClass' | 'useExisting',
): OptionsOrPromise {
  if (typeof (factory as TieredCacheOptionsFactory).create === 'function') {
    return (factory as TieredCacheOptionsFactory).create();
  }
  if (typeof (factory as CacheOptionsFactoryLike).createCacheOptions === 'function') {
    return (factory as CacheOptionsFactoryLike).createCacheOptions();
  }
  const name = (factory as object | null)?.constructor?.name ?? String(factory);
  throw invalid(path, `${name} implements neither create() nor createCacheOptions()`);
}
