import { Codec, hasJsonBody } from '../../lib/serialization/codec';
import { copyJsonTree, nestedKeys } from '../../lib/serialization/json-tree';

/** Every object and array inside `tree`, depth first. */
function objectsOf(tree: unknown, out: object[] = []): object[] {
  if (typeof tree === 'object' && tree !== null) {
    out.push(tree);
    for (const v of Object.values(tree)) objectsOf(v, out);
  }
  return out;
}

/** `nestedKeys` of a tree, which the store computes for objects only. */
function hintFor(tree: unknown): readonly string[] | undefined {
  return typeof tree === 'object' && tree !== null ? nestedKeys(tree) : undefined;
}

const shared = { s: [1] };
const nullProto = Object.assign(Object.create(null) as object, { x: 1, y: { z: [] } });
const TREES: Array<[string, unknown]> = [
  ['a flat object', { id: 42, name: 'Espresso machine', price: 199.99, ok: true, none: null }],
  ['a product row', { id: 42, name: 'x', tags: ['kitchen', 'coffee'], stock: 7 }],
  [
    'nested objects and arrays',
    { a: { b: { c: [[1, [2, { d: 'e' }]], []] } }, f: [{}, { g: [] }] },
  ],
  ['an array at the top', [{ id: 1, tags: ['a'] }, { id: 2, tags: [] }, 'x', 3, null]],
  ['integer-like keys (JSON order)', { b: 1, 2: 'two', a: { 10: [], 1: {} } }],
  [
    'an own __proto__ key',
    JSON.parse('{"__proto__": {"polluted": true}, "a": {"__proto__": [1]}}'),
  ],
  ['a null-prototype object', { inner: nullProto }],
  ['a subtree referenced twice', { first: shared, second: shared }],
  ['unicode and lone surrogates', { 'ключ 🔑': 'zß水🍣', lone: '\ud800' }],
  ['a string', 'just text'],
  ['null', null],
];

describe('copyJsonTree', () => {
  it.each(TREES)('copies %s exactly as a JSON round trip would', (_label, tree) => {
    const viaJson: unknown = JSON.parse(JSON.stringify(tree));
    for (const copy of [copyJsonTree(tree), copyJsonTree(tree, hintFor(tree))]) {
      expect(copy).toStrictEqual(viaJson);
      // Same keys in the same order, at every level, and the same prototypes.
      expect(JSON.stringify(copy)).toBe(JSON.stringify(viaJson));
      const copies = objectsOf(copy);
      for (const [i, o] of objectsOf(viaJson).entries()) {
        expect(Object.getPrototypeOf(copies[i])).toBe(Object.getPrototypeOf(o));
        expect(Object.keys(copies[i])).toEqual(Object.keys(o));
      }
    }
  });

  it.each(TREES)('shares no object or array with %s', (_label, tree) => {
    const originals = new Set(objectsOf(tree));
    for (const o of objectsOf(copyJsonTree(tree))) expect(originals.has(o)).toBe(false);
    for (const o of objectsOf(copyJsonTree(tree, hintFor(tree))))
      expect(originals.has(o)).toBe(false);
  });

  it('keeps an own __proto__ key a property and leaves the prototype alone', () => {
    const tree = JSON.parse('{"__proto__": {"polluted": true}}') as Record<string, unknown>;
    for (const copy of [copyJsonTree(tree), copyJsonTree(tree, nestedKeys(tree))]) {
      expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
      expect(Object.keys(copy)).toEqual(['__proto__']);
      expect((copy as { polluted?: boolean }).polluted).toBeUndefined();
    }
  });

  it('ignores enumerable keys inherited from a polluted Object.prototype', () => {
    const tree = { a: 1, b: { c: 2 } };
    Object.defineProperty(Object.prototype, 'injected', {
      value: { evil: true },
      enumerable: true,
      configurable: true,
      writable: true,
    });
    try {
      const copy = copyJsonTree(tree);
      expect(Object.keys(copy)).toEqual(['a', 'b']);
      expect(Object.keys(copy.b)).toEqual(['c']);
    } finally {
      delete (Object.prototype as Record<string, unknown>).injected;
    }
  });

  it('lists the top-level keys that hold objects or arrays', () => {
    expect(nestedKeys({ a: 1, b: [], c: 'x', d: {}, e: null })).toEqual(['b', 'd']);
    expect(nestedKeys({ a: 1 })).toEqual([]);
    expect(nestedKeys([{}, []])).toBeUndefined();
  });

  it('hands trees of one shape one shared list, which no other shape gets', () => {
    // The memory tier keeps a tree's list for as long as the entry lives: one per entry would
    // cost every read entry an array of its own.
    const first = nestedKeys({ id: 1, tags: ['a'], stock: 7 });
    expect(nestedKeys({ id: 2, tags: [], stock: 0 })).toBe(first);
    expect(first).toEqual(['tags']);
    expect(Object.isFrozen(first)).toBe(true);
    // Keys that join alike stay apart: one key "a,b" is not the keys "a" and "b".
    const joined = nestedKeys({ 'a,b': {} });
    const two = nestedKeys({ a: {}, b: [] });
    expect(joined).toEqual(['a,b']);
    expect(two).toEqual(['a', 'b']);
    expect(nestedKeys({ a: [], b: {} })).toBe(two);
  });

  it('is used only for values the codec gives a JSON body', () => {
    const codec = new Codec();
    expect(hasJsonBody(codec.encode({ a: [1, 'x', null] }, 0))).toBe(true);
    expect(hasJsonBody(codec.encode({ at: new Date(0) }, 0))).toBe(false);
    expect(hasJsonBody(codec.encode(new Map(), 0))).toBe(false);
    expect(hasJsonBody(Buffer.from('12345'))).toBe(false); // a memcached counter
  });
});
