import { Codec, MAX_VALUE_DEPTH } from '../../lib/serialization/codec';
import { copyJsonTree } from '../../lib/serialization/json-tree';
import { createTieredStore } from '../../lib/store/tiered-store';
import { MapTier } from '../support/map-tier';

/** A value nested `levels` deep: `levels` containers of `kind`, one inside the other, around `leaf`. */
function nested(levels: number, kind: 'object' | 'array' | 'map' | 'set', leaf: unknown = 1) {
  let v: unknown = leaf;
  for (let i = 0; i < levels; i++) {
    if (kind === 'object') v = { a: v };
    else if (kind === 'array') v = [v];
    else if (kind === 'map') v = new Map([['a', v]]);
    else v = new Set([v]);
  }
  return v;
}

/**
 * The containers of a chain made by {@link nested}, outermost first, and its leaf, read without
 * recursion (Jest's own equality overflows the stack on a thousand nested Maps).
 */
function unwrap(value: unknown): { kinds: string[]; leaf: unknown } {
  const kinds: string[] = [];
  let v = value;
  for (;;) {
    if (typeof v !== 'object' || v === null || v instanceof Date) return { kinds, leaf: v };
    kinds.push(Object.prototype.toString.call(v));
    if (v instanceof Map) v = v.get('a');
    else if (v instanceof Set) v = [...(v as Set<unknown>)][0];
    else if (Array.isArray(v)) v = v[0];
    else v = (v as { a: unknown }).a;
  }
}

const TOO_DEEP = new RegExp(
  `^value cannot be cached: .* is nested deeper than ${MAX_VALUE_DEPTH} levels$`,
);

/** Whatever `fn` throws (fails when it does not throw). */
function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('deep values', () => {
  const codec = new Codec();

  it('has a documented limit well under where V8 overflows its stack', () => {
    // Measured on Node 20 with the default stack: v8.deserialize of nested objects overflows at
    // about 1,950 levels, v8.serialize at about 3,100, JSON.stringify at about 4,200.
    expect(MAX_VALUE_DEPTH).toBe(1000);
  });

  describe.each(['object', 'array', 'map', 'set'] as const)('made of %s containers', (kind) => {
    it.each([MAX_VALUE_DEPTH + 1, 5_000, 100_000])(
      'refuses %i levels with a TypeError naming the limit, not a RangeError',
      (levels) => {
        const err = thrownBy(() => codec.encode(nested(levels, kind), 0));
        expect(err).toBeInstanceOf(TypeError);
        expect(err).not.toBeInstanceOf(RangeError);
        expect((err as Error).message).toMatch(TOO_DEEP);
        // The path is shortened, not thousands of characters long.
        expect((err as Error).message.length).toBeLessThan(300);
      },
    );

    it(`round-trips exactly ${MAX_VALUE_DEPTH} levels`, () => {
      const decoded = codec.decode(codec.encode(nested(MAX_VALUE_DEPTH, kind), 0)).value;
      expect(unwrap(decoded)).toEqual(unwrap(nested(MAX_VALUE_DEPTH, kind)));
    });

    it(`round-trips ${MAX_VALUE_DEPTH} levels with a V8 body (a Date inside)`, () => {
      const value = nested(MAX_VALUE_DEPTH, kind, new Date(0));
      const decoded = codec.decode(codec.encode(value, 0)).value;
      expect(unwrap(decoded)).toEqual(unwrap(value));
    });
  });

  it('counts Map keys as levels too', () => {
    let v: unknown = 1;
    for (let i = 0; i < MAX_VALUE_DEPTH + 1; i++) v = new Map([[{ k: v }, 1]]);
    expect(() => codec.encode(v, 0)).toThrow(TOO_DEEP);
  });

  it('refuses a deep subtree beside shallow ones', () => {
    const value = { ok: [1, 2, { x: 3 }], deep: nested(10_000, 'object') };
    expect(() => codec.encode(value, 0)).toThrow(TOO_DEEP);
  });

  describe('copyJsonTree', () => {
    it.each(['object', 'array'] as const)(
      `copies %s trees ${MAX_VALUE_DEPTH} levels deep`,
      (kind) => {
        const value = nested(MAX_VALUE_DEPTH, kind);
        const copy = copyJsonTree(value);
        expect(copy).toEqual(value);
        expect(copy).not.toBe(value);
      },
    );

    it.each([
      ['object', MAX_VALUE_DEPTH + 1],
      ['array', MAX_VALUE_DEPTH + 1],
      ['object', 100_000],
      ['array', 100_000],
    ] as const)('refuses %s trees %i levels deep with the TypeError', (kind, levels) => {
      const err = thrownBy(() => copyJsonTree(nested(levels, kind)));
      expect(err).toBeInstanceOf(TypeError);
      expect(err).not.toBeInstanceOf(RangeError);
      expect((err as Error).message).toMatch(TOO_DEEP);
    });

    it('refuses a deep tree under a top-level key given in the hint', () => {
      const value = { deep: nested(100_000, 'object') };
      expect(() => copyJsonTree(value, ['deep'])).toThrow(TOO_DEEP);
    });
  });

  describe('through the store: nothing is written anywhere', () => {
    it.each([
      ['copies', { type: 'memory' as const }],
      ['shared objects', { type: 'memory' as const, serialize: false }],
    ])('memory tier (%s) and a shared tier', async (_label, memory) => {
      const far = new MapTier({ name: 'far' });
      const store = createTieredStore({ tiers: [memory, far] });
      await store.connect();
      try {
        await store.set('k', 'before');
        // The entry and the namespace generation.
        const held = far.size;
        for (const levels of [MAX_VALUE_DEPTH + 1, 100_000]) {
          for (const kind of ['object', 'array', 'map'] as const) {
            const err = await store.set('k', nested(levels, kind)).catch((e: unknown) => e);
            expect(err).toBeInstanceOf(TypeError);
            expect((err as Error).message).toMatch(TOO_DEEP);
            const many = await store
              .setMany([
                { key: 'a', value: 1 },
                { key: 'b', value: nested(levels, kind) },
              ])
              .catch((e: unknown) => e);
            expect((many as Error).message).toMatch(TOO_DEEP);
            const entry = await store
              .setEntry('k', nested(levels, kind), { ttl: 1000, grace: 1000 })
              .catch((e: unknown) => e);
            expect((entry as Error).message).toMatch(TOO_DEEP);
          }
        }
        expect(await store.get('k')).toBe('before');
        expect(await store.get('a')).toBeUndefined();
        expect(await store.get('b')).toBeUndefined();
        // The shared tier holds only what it held before.
        expect(far.size).toBe(held);
      } finally {
        await store.disconnect();
      }
    });
  });
});
