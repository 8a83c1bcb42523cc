import { stableKey } from '../../lib/keys/stable-key';

/** Default `@Cached` method keys: stored in shared tiers, so their spelling must never change. */
describe('stableKey', () => {
  it.each([
    [[], '[]'],
    [[42], '[42]'],
    [[-0, 0, NaN, 1.5], '[-0,0,NaN,1.5]'],
    [['a', 'b"c'], '["a","b\\"c"]'],
    [[true, false, null, undefined], '[true,false,null,undefined]'],
    [[10n], '[10n]'],
    // eslint-disable-next-line no-sparse-arrays
    [[1, , 2], '[1,,2]'],
    [[1, { b: 2, a: [1] }], '[1,{"a":[1],"b":2}]'],
    [[new Date(0), 'x'], '[Date(1970-01-01T00:00:00.000Z),"x"]'],
    [[[1, 2], 3], '[[1,2],3]'],
  ])('spells %p as %s', (args, key) => {
    expect(stableKey(args)).toBe(key);
  });

  it('gives arguments of primitives the spelling of the same array nested in an object', () => {
    // The fast path for primitive arguments and the general one agree.
    const args = [7, 'id', false, null, undefined, -0, 3n];
    expect(`{"x":${stableKey(args)}}`).toBe(stableKey({ x: args }));
  });

  it.each([
    [[() => 1], 'cannot build a cache key from a function argument'],
    [[Symbol('s')], 'cannot build a cache key from a symbol argument'],
  ])('refuses %p', (args, message) => {
    expect(() => stableKey(args)).toThrow(message);
  });
});
