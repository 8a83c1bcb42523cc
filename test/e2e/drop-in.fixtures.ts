/**
 * App code written the way `@nestjs/cache-manager`'s documentation writes it (docs.nestjs.com,
 * "Caching"): everything below imports from `@nestjs/cache-manager` and knows nothing of this
 * library. Only the module registration, in the spec, names `TieredCacheModule`.
 */
import {
  Controller,
  type DynamicModule,
  type ExecutionContext,
  Get,
  Inject,
  Injectable,
  Module,
  Param,
  UseInterceptors,
} from '@nestjs/common';
import {
  CACHE_MANAGER,
  Cache,
  CacheInterceptor,
  CacheKey,
  type CacheModuleOptions,
  type CacheOptionsFactory,
  CacheTTL,
} from '@nestjs/cache-manager';
import { Origin } from './fixtures';

/** "Interacting with the cache store": `@Inject(CACHE_MANAGER)`, get, else compute and set. */
@Controller('cats')
export class CatsController {
  constructor(
    @Inject(CACHE_MANAGER) private cacheManager: Cache,
    private origin: Origin,
  ) {}

  @Get(':id')
  async findOne(@Param('id') id: string) {
    const cached = await this.cacheManager.get<{ id: string }>(`cat:${id}`);
    if (cached) return cached;
    const cat = await this.origin.query({ id, name: `cat ${id}` });
    await this.cacheManager.set(`cat:${id}`, cat, 60_000);
    return cat;
  }
}

/** The `Cache` class token: injected by its type alone, no `@Inject()`. */
@Injectable()
export class CatsService {
  constructor(
    private cache: Cache,
    private origin: Origin,
  ) {}

  find(id: number): Promise<{ id: number }> {
    return this.cache.wrap(`cat-service:${id}`, () => this.origin.query({ id }), 60_000);
  }
}

/** "Auto-caching responses": the interceptor on a controller, `@CacheKey`, `@CacheTTL`. */
@Controller('dogs')
@UseInterceptors(CacheInterceptor)
@CacheTTL(30_000)
export class DogsController {
  constructor(private origin: Origin) {}

  /** Keyed by URL; the class's TTL. */
  @Get()
  findAll() {
    return this.origin.query([{ name: 'Rex' }]);
  }

  /** Its own key and TTL. */
  @Get('custom')
  @CacheKey('custom_key')
  @CacheTTL(20_000)
  custom() {
    return this.origin.query({ custom: true });
  }

  /** A TTL short enough to watch it expire. */
  @Get('short')
  @CacheKey('short_key')
  @CacheTTL(300)
  short() {
    return this.origin.query({ short: true });
  }
}

/** A controller without an interceptor of its own: cached by a global `CacheInterceptor`. */
@Controller('birds')
export class BirdsController {
  constructor(private origin: Origin) {}

  @Get()
  findAll() {
    return this.origin.query([{ name: 'Tweety' }]);
  }
}

/** "Adjust tracking": a `CacheInterceptor` subclass with its own `trackBy`. */
@Injectable()
export class HttpCacheInterceptor extends CacheInterceptor {
  protected override trackBy(context: ExecutionContext): string | undefined {
    const request = context.switchToHttp().getRequest<{ path: string }>();
    return `path:${request.path}`; // the query string is ignored
  }
}

@Controller('fish')
@UseInterceptors(HttpCacheInterceptor)
export class FishController {
  constructor(private origin: Origin) {}

  @Get()
  findAll() {
    return this.origin.query([{ name: 'Nemo' }]);
  }
}

/** A feature module that imports no cache module: it works only when the cache is global. */
@Controller('global')
@UseInterceptors(CacheInterceptor)
export class GlobalController {
  constructor(
    @Inject(CACHE_MANAGER) private cacheManager: Cache,
    private origin: Origin,
  ) {}

  @Get()
  findAll() {
    return this.origin.query({ global: true });
  }

  @Get('direct')
  async direct() {
    await this.cacheManager.set('global-direct', 'yes', 60_000);
    return { value: await this.cacheManager.get('global-direct') };
  }
}

@Module({ controllers: [GlobalController] })
export class FeatureModule {}

/** The settings a `CacheOptionsFactory` reads (a ConfigService of the app's own). */
export class CacheSettings {
  constructor(
    readonly namespace: string,
    readonly ttl: number,
    readonly tiers: CacheModuleOptions['tiers'],
  ) {}
}

/** `registerAsync({ useClass })`: the options class of the docs, `CacheOptionsFactory`. */
@Injectable()
export class CacheConfigService implements CacheOptionsFactory {
  constructor(private settings: CacheSettings) {}

  createCacheOptions(): CacheModuleOptions {
    const { namespace, ttl, tiers } = this.settings;
    return { namespace, ttl, tiers };
  }
}

/** `registerAsync({ imports: [AppConfigModule], useExisting: AppConfigService })`. */
@Injectable()
export class AppConfigService implements CacheOptionsFactory {
  constructor(private settings: CacheSettings) {}

  async createCacheOptions(): Promise<CacheModuleOptions> {
    const { namespace, ttl, tiers } = this.settings;
    return { namespace, ttl, tiers };
  }
}

/** The app's own config module, exporting {@link AppConfigService}. */
@Module({})
export class AppConfigModule {
  static forRoot(settings: CacheSettings): DynamicModule {
    return {
      module: AppConfigModule,
      providers: [AppConfigService, { provide: CacheSettings, useValue: settings }],
      exports: [AppConfigService],
    };
  }
}
