import { KeyBuilder } from '../../lib/keys/key-builder';
import { MAX_KEY_BYTES } from '../../lib/tiers/tier.interface';

describe('KeyBuilder', () => {
  it('namespaces, versions and generations plain keys', () => {
    const keys = new KeyBuilder({ namespace: 'shop', version: 3 });
    expect(keys.build('user:1')).toBe('shop:3:0:user:1');
    keys.generation = 7;
    expect(keys.build('user:1')).toBe('shop:3:7:user:1');
    expect(keys.generationKey).toBe('shop:3:generation');
  });

  it('hashes keys that are too long or unsafe for memcached, and only those', () => {
    const keys = new KeyBuilder({ namespace: 'ns' });
    const ok = 'k'.repeat(MAX_KEY_BYTES - 'ns:1:0:'.length);
    expect(keys.build(ok)).toBe(`ns:1:0:${ok}`);
    for (const key of [ok + 'k', 'a b', 'tab\there', 'nl\n', 'del\u007f', 'é'.repeat(122)]) {
      const built = keys.build(key);
      expect(built).toMatch(/^ns:1:0#[A-Za-z0-9_-]{43}$/);
      expect(Buffer.byteLength(built)).toBeLessThanOrEqual(MAX_KEY_BYTES);
    }
    expect(keys.build('é'.repeat(120))).toBe(`ns:1:0:${'é'.repeat(120)}`); // 247 bytes
  });

  it('never makes a hashed key equal to a plain one', () => {
    const keys = new KeyBuilder({ namespace: 'ns' });
    const hashed = keys.build('has space');
    const suffix = hashed.slice('ns:1:0#'.length);
    expect(keys.build(suffix)).toBe(`ns:1:0:${suffix}`);
    expect(keys.build(suffix)).not.toBe(hashed);
  });

  it('applies keyFn first, and memoizes without mixing generations', () => {
    const keys = new KeyBuilder({ keyFn: (k) => k.toLowerCase() });
    expect(keys.build('ABC')).toBe('app:1:0:abc');
    expect(keys.build('ABC')).toBe('app:1:0:abc');
    keys.generation = 1;
    expect(keys.build('ABC')).toBe('app:1:1:abc');
  });

  it('tells which key a hashed final key hashed (after keyFn); plain ones name themselves', () => {
    const keys = new KeyBuilder({ namespace: 'ns' });
    const long = 'k'.repeat(300);
    expect(keys.hashedFrom('a b', keys.build('a b'))).toBe('a b');
    expect(keys.hashedFrom(long, keys.build(long))).toBe(long);
    expect(keys.hashedFrom('plain', keys.build('plain'))).toBeUndefined();
    expect(keys.hashedFrom('x#y', keys.build('x#y'))).toBeUndefined();
    expect(keys.hashedFrom(7 as unknown as string, keys.build(7 as unknown as string))).toBe(
      undefined,
    );
    keys.generation = 12; // a longer prefix
    expect(keys.hashedFrom('a b', keys.build('a b'))).toBe('a b');
    expect(keys.hashedFrom('plain', keys.build('plain'))).toBeUndefined();
    const lower = new KeyBuilder({ keyFn: (k) => k.toLowerCase() });
    expect(lower.hashedFrom('A B', lower.build('A B'))).toBe('a b');
  });

  it('reads final keys of one generation back, and nothing else', () => {
    const keys = new KeyBuilder({ namespace: 'ns', version: 2 });
    keys.generation = 1;
    expect(keys.scanPrefix()).toBe('ns:2:1');
    expect(keys.scanPrefix(10)).toBe('ns:2:10');
    expect(keys.keyOf(keys.build('user:1'))).toBe('user:1');
    expect(keys.keyOf(keys.build('x#y: z'))).toBeNull(); // hashed (a space)
    expect(keys.keyOf(keys.leaseKey('user:1'))).toBeUndefined();
    expect(keys.keyOf(keys.leaseKey('a b'))).toBeUndefined();
    expect(keys.keyOf(keys.generationKey)).toBeUndefined();
    for (const other of ['ns:2:0:k', 'ns:2:10:k', 'ns:2:10#h', 'ns:20:1:k', 'nsx:2:1:k', 'ns:2:1:'])
      expect(keys.keyOf(other)).toBeUndefined();
    expect(keys.keyOf('ns:2:0:k', 0)).toBe('k');
    expect(keys.keyOf('ns:2:10:k', 10)).toBe('k');
    keys.generation = 10;
    expect(keys.keyOf('ns:2:10:k')).toBe('k');
    expect(keys.keyOf('ns:2:1:k')).toBeUndefined();
  });

  it.each([
    ['an empty key', '', 'cache key must not be empty'],
    [
      'a lone surrogate',
      'a\ud800b',
      'cache key holds a lone UTF-16 surrogate and has no exact UTF-8 form',
    ],
    ['null', null, 'cache key must be a string, got null'],
    ['an object', {}, 'cache key must be a string, got object'],
  ])('rejects %s with a TypeError', (_label, key, message) => {
    expect(() => new KeyBuilder().build(key as string)).toThrow(new TypeError(message));
  });

  it('accepts finite numbers as keys', () => {
    expect(new KeyBuilder().build(42 as unknown as string)).toBe('app:1:0:42');
  });

  it.each([
    [{ namespace: 'a:b' }, /^namespace: "a:b" must be 1-64 characters/],
    [{ namespace: '' }, /^namespace: "" must be/],
    [{ version: 'v#1' }, /^version: "v#1" must be/],
    [{ keyFn: 'nope' }, /^keyFn: must be a function/],
  ])('rejects options %p', (options, message) => {
    expect(() => new KeyBuilder(options as never)).toThrow(message);
  });
});
