import { Injectable, NotFoundException } from '@nestjs/common';

export interface Product {
  id: number;
  name: string;
  price: number;
  updatedAt: Date;
}

/** The "database": every query takes 50 ms, which is what the cache saves. */
@Injectable()
export class ProductsRepository {
  /** Queries served, so the effect of the cache can be seen at GET /cache/stats. */
  queries = 0;
  private readonly rows = new Map<number, Product>(
    ['Espresso machine', 'Grinder', 'Kettle', 'Scale', 'Milk jug'].map((name, i) => [
      i + 1,
      { id: i + 1, name, price: 20 + i * 15, updatedAt: new Date('2026-01-01T00:00:00Z') },
    ]),
  );

  async findAll(maxPrice?: number): Promise<Product[]> {
    await this.slowQuery();
    return [...this.rows.values()].filter((p) => maxPrice === undefined || p.price <= maxPrice);
  }

  async findOne(id: number): Promise<Product> {
    await this.slowQuery();
    const row = this.rows.get(id);
    if (!row) throw new NotFoundException(`product ${id} not found`);
    return row;
  }

  async update(id: number, changes: Partial<Pick<Product, 'name' | 'price'>>): Promise<Product> {
    const row = await this.findOne(id);
    const updated = { ...row, ...changes, updatedAt: new Date() };
    this.rows.set(id, updated);
    return updated;
  }

  private async slowQuery(): Promise<void> {
    this.queries++;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
