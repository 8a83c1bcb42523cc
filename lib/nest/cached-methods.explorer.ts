import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { stableKey } from '../keys/stable-key';
import { cachedKey, cachedTags, evict, readCachedCall, readThroughCall } from './cached-call';
import type { CacheEvictOptions } from './cache-evict.decorator';
import type { CachedOptions } from './cached.decorator';
import { TieredCache } from './tiered-cache.service';

/** A provider method, called with its instance as `this`. */
type ProviderMethod = (this: unknown, ...args: unknown[]) => unknown;

/**
 * Finds `@Cached()` and `@CacheEvict()` on provider methods at bootstrap (the way
 * `@nestjs/schedule` and `@nestjs/bull` find theirs) and wraps them on the instance. Controller
 * handlers are left to the interceptor. The wrapped methods return Promises.
 */
@Injectable()
export class CachedMethodsExplorer implements OnModuleInit {
  private readonly logger = new Logger('TieredCache');

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    private readonly cache: TieredCache,
  ) {}

  /** Wraps the decorated methods of every singleton provider. */
  onModuleInit(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const instance: unknown = wrapper.instance;
      if (!instance || typeof instance !== 'object') continue;
      const prototype = Object.getPrototypeOf(instance) as Record<string, unknown> | null;
      if (!prototype) continue;
      for (const name of this.scanner.getAllMethodNames(prototype)) {
        const method = prototype[name];
        if (typeof method !== 'function') continue;
        const call = readCachedCall(this.reflector, method);
        if (!call) continue;
        const className = instance.constructor.name;
        if (!wrapper.isDependencyTreeStatic()) {
          this.logger.warn(
            `${className}.${name}: @Cached/@CacheEvict need a singleton provider; request-scoped ones are not wrapped`,
          );
          continue;
        }
        (instance as Record<string, unknown>)[name] = this.wrap(
          `${className}.${name}`,
          method as ProviderMethod,
          call.cached,
          call.evict,
        );
      }
    }
  }

  /** The wrapper that applies the metadata: read-through with one origin call per key, then evictions. */
  protected wrap(
    id: string,
    method: ProviderMethod,
    cached: CachedOptions | undefined,
    evicts: CacheEvictOptions | undefined,
  ): ProviderMethod {
    const cache = this.cache;
    const keyFor = (options: CachedOptions, args: unknown[]) => this.keyFor(id, options, args);
    // Not an async function: a hit returns the read-through's own promise, with no layer around it.
    const wrapped = function (this: unknown, ...args: unknown[]): Promise<unknown> {
      let result: Promise<unknown>;
      try {
        result = cached
          ? cache.valueCall(
              keyFor(cached, args),
              () => method.apply(this, args),
              readThroughCall(cache, cached, args, cachedTags(cached, args)),
            )
          : Promise.resolve(method.apply(this, args));
      } catch (err) {
        return Promise.reject(err);
      }
      if (!evicts) return result;
      return result.then(async (value) => {
        await evict(cache, evicts, args);
        return value;
      });
    };
    Object.defineProperty(wrapped, 'name', { value: method.name });
    return wrapped;
  }

  /** `@Cached({ key })`, else `Class.method:` plus a stable form of the arguments. */
  protected keyFor(id: string, options: CachedOptions, args: unknown[]): string {
    if (options.key === undefined && !options.namespace) return `${id}:${stableKey(args)}`;
    return cachedKey(options, args, () => `${id}:${stableKey(args)}`);
  }
}
