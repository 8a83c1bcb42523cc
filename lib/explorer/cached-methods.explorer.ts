import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { type CacheEvictOptions, evictKeys } from '../decorators/cache-evict.decorator';
import type { CachedOptions } from '../decorators/cached.decorator';
import { herdOf } from '../herd/herd.options';
import { stableKey } from '../keys/stable-key';
import { CACHE_EVICT_METADATA, CACHED_METADATA } from '../tiered-cache.constants';
import { TieredCache } from '../tiered-cache.service';

type AnyMethod = (...args: unknown[]) => unknown;

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

  onModuleInit(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const instance: unknown = wrapper.instance;
      if (!instance || typeof instance !== 'object') continue;
      const prototype = Object.getPrototypeOf(instance) as Record<string, unknown> | null;
      if (!prototype) continue;
      for (const name of this.scanner.getAllMethodNames(prototype)) {
        const method = prototype[name];
        if (typeof method !== 'function') continue;
        const cached = this.reflector.get<CachedOptions | undefined>(CACHED_METADATA, method);
        const evict = this.reflector.get<CacheEvictOptions | undefined>(
          CACHE_EVICT_METADATA,
          method,
        );
        if (!cached && !evict) continue;
        const className = (instance as object).constructor.name;
        if (!wrapper.isDependencyTreeStatic()) {
          this.logger.warn(
            `${className}.${name}: @Cached/@CacheEvict need a singleton provider; request-scoped ones are not wrapped`,
          );
          continue;
        }
        (instance as Record<string, unknown>)[name] = this.wrap(
          `${className}.${name}`,
          method as AnyMethod,
          cached,
          evict,
        );
      }
    }
  }

  /** The wrapper that applies the metadata: read-through with one origin call per key, then evictions. */
  protected wrap(
    id: string,
    method: AnyMethod,
    cached: CachedOptions | undefined,
    evict: CacheEvictOptions | undefined,
  ): AnyMethod {
    const cache = this.cache;
    const keyOf = (args: unknown[]) => this.keyFor(id, cached!, args);
    const wrapped = async function (this: unknown, ...args: unknown[]): Promise<unknown> {
      const result = cached
        ? await cache.getOrSet(keyOf(args), () => method.apply(this, args), {
            ...herdOf(cached),
            ttl: cached.ttl,
            condition: cached.condition && ((value) => cached.condition!(value, ...args)),
          })
        : await method.apply(this, args);
      if (evict) await cache.del(evictKeys(evict, args));
      return result;
    };
    Object.defineProperty(wrapped, 'name', { value: method.name });
    return wrapped;
  }

  /** `@Cached({ key })`, else `Class.method:` plus a stable form of the arguments. */
  protected keyFor(id: string, options: CachedOptions, args: unknown[]): string {
    const key =
      typeof options.key === 'function'
        ? options.key(...args)
        : (options.key ?? `${id}:${stableKey(args)}`);
    return options.namespace ? `${options.namespace}:${key}` : key;
  }
}
