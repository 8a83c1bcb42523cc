import { TieredStore } from '../../lib';
import { describeStoreConformance } from '../support/store-conformance';

describeStoreConformance('memory tier (encoded copies)', { tiers: () => [{ type: 'memory' }] });
describeStoreConformance('memory tier (serialize: false)', {
  tiers: () => [{ type: 'memory', serialize: false }],
  copies: false,
});

describe('memory tier keys', () => {
  it('holds entries under the key keyFn makes, so keys it maps together share one entry', async () => {
    const store = new TieredStore({ tiers: [{ type: 'memory' }], keyFn: (k) => k.toLowerCase() });
    await store.set('User:1', 'ada');
    expect(await store.get('USER:1')).toBe('ada');
    expect(store.peekEntry('user:1')?.value).toBe('ada');
    await store.delete('user:1');
    expect(await store.get('User:1')).toBeUndefined();
  });

  it('treats a number key as its decimal string on every path', async () => {
    const store = new TieredStore({ tiers: [{ type: 'memory' }] });
    const seven = 7 as unknown as string;
    await store.set(seven, 'n');
    expect(await store.get('7')).toBe('n');
    expect(await store.get(seven)).toBe('n');
    expect(await store.getMany([seven, '7'])).toEqual(['n', 'n']);
    await store.delete(seven);
    expect(await store.get('7')).toBeUndefined();
    await expect(store.get(null as unknown as string)).rejects.toThrow(
      'cache key must be a string, got null',
    );
  });

  it('counts keys against maxBytes, so long keys cannot outgrow the budget', async () => {
    const store = new TieredStore({ tiers: [{ type: 'memory', maxBytes: 1000 }] });
    const a = 'a'.repeat(600);
    const b = 'b'.repeat(600);
    await store.set(a, 1);
    expect(await store.get(a)).toBe(1);
    await store.set(b, 2); // 600 + 600 key units: the older entry goes
    expect(await store.get(b)).toBe(2);
    expect(await store.get(a)).toBeUndefined();
    await store.set('c'.repeat(1200), 3); // alone over the budget: not kept
    expect(await store.get('c'.repeat(1200))).toBeUndefined();
    expect(await store.get(b)).toBe(2);
  });
});
