import { deflateRawSync } from 'node:zlib';
import { CacheDecodeError } from '../../lib/errors';
import { Codec, FORMAT_V1, expiresAtOf } from '../../lib/serialization/codec';
import { ROUND_TRIP_VALUES, expectSameValue } from '../support/values';

const FLAG_DEFLATED = 0b1;
const FLAG_JSON = 0b10;
const FLAG_META = 0b100;
const FLAG_KEY = 0b1000;

describe('Codec', () => {
  const codec = new Codec();

  it.each(ROUND_TRIP_VALUES)('round-trips %s with its expiry', (_label, value) => {
    const bytes = codec.encode(value, 1_700_000_000_123);
    const record = codec.decode(bytes);
    expectSameValue(record.value, value);
    expect(record.expiresAt).toBe(1_700_000_000_123);
  });

  it('writes a header: format byte, flags, expiry', () => {
    const bytes = codec.encode({ a: 1 }, 0);
    expect(bytes[0]).toBe(FORMAT_V1);
    expect(bytes.readDoubleBE(2)).toBe(0);
  });

  it.each([
    ['a plain object', { a: [1, 'x', null, true], b: { c: 2.5 } }, true],
    ['a string', 'text', true],
    ['a Date inside', { at: new Date(0) }, false],
    ['-0', -0, false],
    ['undefined inside an object', { a: undefined }, false],
    ['an array with a hole', [1, , 3], false], // eslint-disable-line no-sparse-arrays
    [
      'a class instance',
      new (class Point {
        x = 1;
      })(),
      false,
    ],
    ['NaN', NaN, false],
  ])('uses the JSON body only when JSON is exact: %s', (_label, value, json) => {
    const bytes = codec.encode(value, 0);
    expect(Boolean(bytes[1] & FLAG_JSON)).toBe(json);
  });

  it('compresses bodies over the threshold, and only when that shrinks them', () => {
    const big = { text: 'abc'.repeat(10_000) };
    const bytes = codec.encode(big, 0);
    expect(bytes[1] & FLAG_DEFLATED).toBe(FLAG_DEFLATED);
    expect(bytes.length).toBeLessThan(2000);
    expect(codec.decode(bytes).value).toEqual(big);

    const random = Buffer.from(Array.from({ length: 20_000 }, (_, i) => (i * 7919) % 251));
    const incompressible = deflateRawSync(random); // already compressed data
    const raw = codec.encode(incompressible, 0);
    expect(raw[1] & FLAG_DEFLATED).toBe(0);
    expect(new Codec({ compressThreshold: 0 }).encode(big, 0)[1] & FLAG_DEFLATED).toBe(0);
  });

  it('reads memcached counters (ASCII digits) as numbers', () => {
    expect(codec.decode(Buffer.from('12345'))).toEqual({ value: 12345, expiresAt: 0 });
  });

  it.each([
    ['empty', Buffer.alloc(0), 'empty payload'],
    ['unknown format', Buffer.from('{"json":"from someone else"}'), 'unknown format byte 0x7b'],
    ['truncated header', Buffer.from([FORMAT_V1, 0, 1]), 'truncated header (3 bytes)'],
    [
      'corrupt body',
      Buffer.concat([
        Buffer.from([FORMAT_V1, FLAG_JSON]),
        Buffer.alloc(8),
        Buffer.from('{not json'),
      ]),
      /^corrupt body/,
    ],
  ])('refuses %s bytes with a CacheDecodeError', (_label, bytes, message) => {
    expect(() => codec.decode(bytes)).toThrow(CacheDecodeError);
    expect(() => codec.decode(bytes)).toThrow(message);
  });

  it('names the path of what cannot be cached', () => {
    const circular: { list: unknown[] } = { list: [] };
    circular.list.push({ back: circular });
    expect(() => codec.encode(circular, 0)).toThrow(
      'value cannot be cached: (value).list[0].back is a circular reference',
    );
    expect(() => codec.encode(new Map([['k', () => 1]]), 0)).toThrow(
      'value cannot be cached: (value).get("k") is a function',
    );
    expect(() => codec.encode({ p: Promise.resolve() }, 0)).toThrow('(value).p is a Promise');
    expect(() => codec.encode({ [Symbol('s')]: 1 }, 0)).toThrow('has symbol-keyed properties');
    const shared = { x: 1 };
    expect(codec.decode(codec.encode({ a: shared, b: shared }, 0)).value).toEqual({
      a: { x: 1 },
      b: { x: 1 },
    });
  });

  describe('the key of an entry under a hashed final key (flag bit 3)', () => {
    const key = `long ${'ключ'.repeat(100)} with spaces\u0000`;

    it.each([
      ['a JSON body', { a: [1, 'x'] }, undefined],
      ['a V8 body', new Map([[1, new Date(5)]]), undefined],
      ['read-through metadata', { a: 1 }, { staleAt: 1234, delta: 56 }],
      ['a deflated body', { text: 'abc'.repeat(10_000) }, undefined],
    ])('is kept with %s, and read back with the entry', (_label, value, meta) => {
      const bytes = codec.encode(value, 1_700_000_000_123, meta, key);
      expect(bytes[1] & FLAG_KEY).toBe(FLAG_KEY);
      const record = codec.decode(bytes);
      expectSameValue(record.value, value);
      expect(record.expiresAt).toBe(1_700_000_000_123);
      expect(record.key).toBe(key);
      if (meta) expect([record.staleAt, record.delta]).toEqual([1234, 56]);
      else expect(record.staleAt).toBeUndefined();
    });

    it('sits after the header (and metadata): length uint32 BE, then UTF-8', () => {
      const bytes = codec.encode('v', 9, { staleAt: 1, delta: 2 }, 'k é');
      expect(bytes[1]).toBe(FLAG_JSON | FLAG_META | FLAG_KEY);
      expect(bytes.readUInt32BE(26)).toBe(4);
      expect(bytes.toString('utf8', 30, 34)).toBe('k é');
      expect(bytes.toString('utf8', 34)).toBe('"v"');
      const plain = codec.encode('v', 9, undefined, '');
      expect(plain.readUInt32BE(10)).toBe(0);
      expect(codec.decode(plain)).toEqual({ value: 'v', expiresAt: 9, key: '' });
    });

    it('is absent without a key: entries written before the flag decode as they did', () => {
      const bytes = codec.encode({ a: 1 }, 7);
      expect(bytes[1] & FLAG_KEY).toBe(0);
      expect(codec.decode(bytes)).toEqual({ value: { a: 1 }, expiresAt: 7 });
      // Bytes as the previous format wrote them: header, then the body.
      const before = Buffer.concat([
        Buffer.from([FORMAT_V1, FLAG_JSON]),
        Buffer.alloc(8),
        Buffer.from('[1,2]'),
      ]);
      expect(codec.decode(before)).toEqual({ value: [1, 2], expiresAt: 0 });
      expect('key' in codec.decode(before)).toBe(false);
    });

    it.each([
      [
        'no room for its length',
        Buffer.from([FORMAT_V1, FLAG_KEY, ...Array(10).fill(0)]),
        'truncated header (12 bytes)',
      ],
      [
        'a length past the end',
        Buffer.concat([
          Buffer.from([FORMAT_V1, FLAG_KEY]),
          Buffer.alloc(8),
          Buffer.from([0, 0, 0, 9]),
          Buffer.from('abc'),
        ]),
        'truncated key (17 bytes)',
      ],
    ])('refuses %s with a CacheDecodeError', (_label, bytes, message) => {
      expect(() => codec.decode(bytes)).toThrow(CacheDecodeError);
      expect(() => codec.decode(bytes)).toThrow(message);
    });
  });

  it('rejects bad options, naming them', () => {
    expect(() => new Codec({ compressThreshold: -1 })).toThrow(/^compressThreshold: -1/);
    expect(() => new Codec({ compressLevel: 12 })).toThrow(
      /^compressLevel: 12 is not an integer from 1 to 9/,
    );
  });

  it('expiresAtOf reads the expiry of an entry off its header alone, whatever its body', () => {
    const codec = new Codec({ compressThreshold: 16 });
    for (const value of ['x', 'y'.repeat(100), new Map([[1, 2]])])
      expect(expiresAtOf(codec.encode(value, 1_700_000_123_456, { staleAt: 1, delta: 2 }))).toBe(
        1_700_000_123_456,
      );
    expect(expiresAtOf(codec.encode('never', 0))).toBe(0);
    expect(expiresAtOf(Buffer.from('42'))).toBeUndefined(); // a counter
    expect(expiresAtOf(Buffer.from([FORMAT_V1, 0]))).toBeUndefined(); // truncated
  });
});
