/** A typical cached object, a product row: what every scenario stores and reads. */
export const PRODUCT = {
  id: 42,
  name: 'Espresso machine',
  price: 199.99,
  tags: ['kitchen', 'coffee'],
  stock: 7,
};

/** `count` product keys. */
export function productKeys(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `product:${i}`);
}
