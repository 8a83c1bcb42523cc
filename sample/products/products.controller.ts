import { Body, Controller, Get, Inject, Param, ParseIntPipe, Put, Query } from '@nestjs/common';
import { CACHE_MANAGER } from '@nestjs/cache-manager';
import type { Cache } from 'cache-manager';
import { Cached, type CacheableRequest, TieredCache } from '../../lib';
import { type Product, ProductsRepository } from './products.repository';
import { ProductsService } from './products.service';

@Controller()
export class ProductsController {
  constructor(
    private readonly products: ProductsService,
    private readonly repository: ProductsRepository,
    private readonly tiered: TieredCache,
    @Inject(CACHE_MANAGER) private readonly cacheManager: Cache,
  ) {}

  /**
   * Cached on a controller handler, under a key of its own so that an update can evict it (the
   * default key also holds the handler, the raw path and the host).
   */
  @Get('products')
  @Cached({
    ttl: 30_000,
    key: (req: CacheableRequest) => `products:list:${String(req.query.maxPrice ?? '')}`,
  })
  list(@Query('maxPrice') maxPrice?: string): Promise<Product[]> {
    return this.repository.findAll(maxPrice === undefined ? undefined : Number(maxPrice));
  }

  @Get('products/:id')
  findOne(@Param('id', ParseIntPipe) id: number): Promise<Product> {
    return this.products.findOne(id);
  }

  @Put('products/:id')
  update(
    @Param('id', ParseIntPipe) id: number,
    @Body() changes: Partial<Pick<Product, 'name' | 'price'>>,
  ): Promise<Product> {
    return this.products.update(id, changes);
  }

  /** The standard CACHE_MANAGER, injected as with @nestjs/cache-manager. */
  @Get('cache/visits')
  async visits(): Promise<{ visits: number }> {
    const visits = ((await this.cacheManager.get<number>('visits')) ?? 0) + 1;
    await this.cacheManager.set('visits', visits, 0);
    return { visits };
  }

  @Get('cache/stats')
  stats() {
    return { databaseQueries: this.repository.queries, tiers: this.tiered.stats() };
  }
}
