import { InvalidKeyError } from '../../errors';
import { MAX_KEY_BYTES } from '../tier.interface';

/**
 * Checks a memcached key: 1 to 250 bytes of UTF-8 (the binary protocol's limit).
 *
 * @throws InvalidKeyError naming the key.
 */
export function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw badKey(key);
  // Up to 83 UTF-16 units are at most 249 bytes: only longer keys need counting.
  if (key.length > MAX_KEY_BYTES / 3 && Buffer.byteLength(key) > MAX_KEY_BYTES) throw badKey(key);
}

function badKey(key: string): InvalidKeyError {
  return new InvalidKeyError(
    `memcached key must be 1-${MAX_KEY_BYTES} bytes of UTF-8: ${String(key)}`,
  );
}
