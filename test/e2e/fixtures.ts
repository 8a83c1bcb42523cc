import {
  Controller,
  Get,
  HttpCode,
  Inject,
  Injectable,
  Param,
  Post,
  Query,
  Res,
  UseInterceptors,
} from '@nestjs/common';
import { CACHE_MANAGER, CacheInterceptor, CacheKey, CacheTTL } from '@nestjs/cache-manager';
import type { Cache } from 'cache-manager';
import { CacheEvict, Cached, type CacheableRequest } from '../../lib';

/** Counts calls to the "origin" (the slow database the cache protects). */
export class Origin {
  calls = 0;
  async query<T>(value: T, delayMs = 20): Promise<T> {
    this.calls++;
    await new Promise((r) => setTimeout(r, delayMs));
    return value;
  }
}

@Injectable()
export class ProductsService {
  constructor(readonly origin: Origin) {}

  @Cached({ ttl: 60_000 })
  async find(
    filter: Record<string, unknown>,
  ): Promise<{ filter: Record<string, unknown>; at: Date }> {
    return this.origin.query({ filter, at: new Date(0) });
  }

  @Cached({
    key: (id: number) => `product:${id}`,
    condition: (p: { price: number } | null) => p !== null,
  })
  async findOne(id: number): Promise<{ id: number; price: number } | null> {
    return this.origin.query(id > 0 ? { id, price: id * 10 } : null);
  }

  @CacheEvict({ keys: (id: number) => [`product:${id}`] })
  async update(_id: number, fail = false): Promise<void> {
    if (fail) throw new Error('update failed');
  }
}

@Controller('products')
export class ProductsController {
  constructor(
    private readonly products: ProductsService,
    private readonly origin: Origin,
  ) {}

  @Get()
  @Cached({ ttl: 10_000 })
  list(@Query() query: Record<string, string>) {
    return this.origin.query({ query });
  }

  @Get('lang')
  @Cached({ vary: ['accept-language'] })
  lang() {
    return this.origin.query({ lang: true });
  }

  @Get('odd')
  @Cached({ condition: (result: { n: number }) => result.n % 2 === 1 })
  odd(@Query('n') n: string) {
    return this.origin.query({ n: Number(n) });
  }

  @Get('missing')
  @Cached()
  missing(@Res({ passthrough: true }) res: { status(code: number): void }) {
    res.status(404);
    return this.origin.query({ found: false });
  }

  @Get('session')
  @Cached()
  session(@Res({ passthrough: true }) res: { header(name: string, value: string): void }) {
    res.header('Set-Cookie', 'sid=abc');
    return this.origin.query({ session: true });
  }

  @Get(':id')
  @Cached({ key: (req: CacheableRequest) => `product:${req.params.id}` })
  one(@Param('id') id: string) {
    return this.products.findOne(Number(id));
  }

  @Post(':id')
  @HttpCode(204)
  @CacheEvict({ keys: (req: CacheableRequest) => `product:${req.params.id}` })
  async touch() {}
}

/** The stock `@nestjs/cache-manager` interceptor, on top of our store. */
@Controller('legacy')
@UseInterceptors(CacheInterceptor)
export class LegacyController {
  constructor(
    private readonly origin: Origin,
    @Inject(CACHE_MANAGER) readonly cacheManager: Cache,
  ) {}

  @Get('all')
  @CacheKey('legacy-all')
  @CacheTTL(30_000)
  all() {
    return this.origin.query({ legacy: true });
  }
}
