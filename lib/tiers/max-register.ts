/**
 * What every tier's `raise` (a max-register, see `Tier.raise`) shares: the check of the number and
 * its stored form, ASCII decimal digits (what the codec reads as a number, as it does a memcached
 * counter).
 */

/**
 * Checks the number of a `raise`.
 *
 * @param tier the tier's name, for the message.
 * @throws RangeError when `n` is not a non-negative safe integer.
 */
export function checkRaised(tier: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`${tier}: raise takes a non-negative safe integer, got ${String(n)}`);
  }
}

/** The bytes `raise` stores for `n`: its ASCII decimal digits, with no sign or leading zero. */
export function raisedBytes(n: number): Buffer {
  return Buffer.from(String(n), 'latin1');
}

/**
 * The number held by `bytes` when they are ASCII decimal digits (1 to 20 of them: a memcached
 * counter reaches 2^64 - 1), else `undefined`. Past 2^53 the number is rounded, never below
 * 2^53, so it still compares as higher than any safe integer it exceeds.
 */
export function readRaised(bytes: Uint8Array): number | undefined {
  if (bytes.length === 0 || bytes.length > 20) return undefined;
  let n = 0;
  for (const b of bytes) {
    if (b < 0x30 || b > 0x39) return undefined;
    n = n * 10 + (b - 0x30);
  }
  return n;
}
