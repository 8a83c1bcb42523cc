/** Values that must come back deep-equal, with their exact types, through every tier. */
export const ROUND_TRIP_VALUES: Array<[string, unknown]> = [
  ['string', 'hello'],
  ['unicode string', 'zß水🍣 \u0000 end'],
  ['empty string', ''],
  ['integer', 42],
  ['negative zero', -0],
  ['NaN', NaN],
  ['float', 3.141592653589793],
  ['boolean false', false],
  ['null', null],
  ['BigInt', 12345678901234567890123456789n],
  ['Date', new Date('2024-02-29T12:34:56.789Z')],
  ['Buffer', Buffer.from([0, 1, 2, 255])],
  ['Uint8Array', new Uint8Array([9, 8, 7])],
  [
    'Map',
    new Map<unknown, unknown>([
      ['a', 1],
      [2, { b: new Date(0) }],
    ]),
  ],
  ['Set', new Set(['x', 1, null])],
  ['array', [1, 'two', [3], { four: 4 }]],
  [
    'nested object',
    {
      id: 7,
      at: new Date(86_400_000),
      tags: new Set(['a']),
      meta: { big: 1n, raw: Buffer.from('hi') },
    },
  ],
];

/** Jest's toStrictEqual plus the constructor check Jest skips for Buffer vs Uint8Array. */
export function expectSameValue(actual: unknown, expected: unknown): void {
  expect(actual).toStrictEqual(expected);
  if (expected !== null && typeof expected === 'object') {
    expect((actual as object).constructor).toBe((expected as object).constructor);
  }
}
