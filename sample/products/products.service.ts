import { Injectable } from '@nestjs/common';
import { CacheEvict, Cached } from '../../lib';
import { type Product, ProductsRepository } from './products.repository';

@Injectable()
export class ProductsService {
  constructor(private readonly repository: ProductsRepository) {}

  /** Cached on a plain service method: one query per id until it expires or is evicted. */
  @Cached({ key: (id: number) => `product:${id}`, ttl: 60_000 })
  findOne(id: number): Promise<Product> {
    return this.repository.findOne(id);
  }

  /** Evicts the product (and the list) from every tier once the update succeeded. */
  @CacheEvict({ keys: (id: number) => [`product:${id}`, 'products:list:'] })
  update(id: number, changes: Partial<Pick<Product, 'name' | 'price'>>): Promise<Product> {
    return this.repository.update(id, changes);
  }
}
