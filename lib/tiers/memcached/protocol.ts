/**
 * Request builders for the memcached binary protocol (memjs parses the answers).
 * memjs 1.3.2 has no multi-get, returns counters through a broken 64-bit decode and turns every
 * non-success status into an untyped error; building requests here keeps the status handling and
 * the quiet-get pipeline in this tier's hands while memjs still owns the sockets.
 */

/** Binary protocol opcodes used by the tier. */
export const Opcode = {
  Get: 0x00,
  Set: 0x01,
  Add: 0x02,
  Delete: 0x04,
  Increment: 0x05,
  Decrement: 0x06,
  Flush: 0x08,
  Noop: 0x0a,
  Version: 0x0b,
  /** Quiet get that echoes the key: only hits are answered. */
  GetKQ: 0x0d,
} as const;

/** Binary protocol response statuses. */
export const Status = {
  Ok: 0x00,
  KeyNotFound: 0x01,
  KeyExists: 0x02,
  ValueTooLarge: 0x03,
  InvalidArguments: 0x04,
  NotStored: 0x05,
  NonNumeric: 0x06,
} as const;

const STATUS_TEXT: Record<number, string> = {
  0x00: 'no error',
  0x01: 'key not found',
  0x02: 'key exists',
  0x03: 'value too large',
  0x04: 'invalid arguments',
  0x05: 'item not stored',
  0x06: 'incr/decr on a non-numeric value',
  0x07: 'vbucket belongs to another server',
  0x08: 'authentication error',
  0x09: 'authentication continue',
  0x81: 'unknown command',
  0x82: 'out of memory',
  0x83: 'not supported',
  0x84: 'internal error',
  0x85: 'busy',
  0x86: 'temporary failure',
};

/** Human-readable text of a response status. */
export function statusText(status: number): string {
  return STATUS_TEXT[status] ?? `status 0x${status.toString(16)}`;
}

/** memcached treats an expiry above this many seconds as an absolute Unix time. */
export const MAX_RELATIVE_EXPIRY_SECONDS = 60 * 60 * 24 * 30;

/**
 * Converts a TTL in milliseconds to memcached's expiry field.
 *
 * - `0` means no expiry and stays `0`;
 * - otherwise whole seconds, rounded up (a sub-second TTL becomes 1 s), so an entry never
 *   expires before its TTL;
 * - memcached reads anything above 30 days (2,592,000 s) as an absolute Unix time, so longer TTLs
 *   are sent as `ceil((nowMs + ttlMs) / 1000)` (`nowMs` defaults to the clock, read only then).
 *
 * @throws RangeError when `ttlMs` is negative or not a finite number.
 */
export function toMemcachedExpiry(ttlMs: number, nowMs?: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs < 0) {
    throw new RangeError(`ttl must be a finite number of milliseconds >= 0, got ${ttlMs}`);
  }
  if (ttlMs === 0) return 0;
  const seconds = Math.ceil(ttlMs / 1000);
  if (seconds <= MAX_RELATIVE_EXPIRY_SECONDS) return seconds;
  return Math.ceil(((nowMs ?? Date.now()) + ttlMs) / 1000);
}

const EMPTY = Buffer.alloc(0);

/** Bytes of a request header. */
const HEADER = 24;

/**
 * Writes a request header at `at`. Requests are built here with one unzeroed allocation each;
 * memjs's `makeRequestBuffer` allocates three buffers and zero-fills them, which showed as a
 * quarter of the CPU time of a memcached hit.
 */
function writeHeader(
  buf: Buffer,
  at: number,
  opcode: number,
  keyLength: number,
  extrasLength: number,
  bodyLength: number,
  opaque: number,
): void {
  buf[at] = 0x80; // request magic
  buf[at + 1] = opcode;
  buf.writeUInt16BE(keyLength, at + 2);
  buf[at + 4] = extrasLength;
  buf[at + 5] = 0; // data type
  buf.writeUInt16BE(0, at + 6); // vbucket
  buf.writeUInt32BE(bodyLength, at + 8);
  buf.writeUInt32BE(opaque >>> 0, at + 12);
  buf.writeUInt32BE(0, at + 16); // CAS
  buf.writeUInt32BE(0, at + 20);
}

/** One request: header, extras, key, value. */
function request(
  opcode: number,
  key: string,
  extras: Buffer,
  value: Buffer,
  opaque: number,
): Buffer {
  const keyLength = Buffer.byteLength(key);
  const bodyLength = extras.length + keyLength + value.length;
  const buf = Buffer.allocUnsafe(HEADER + bodyLength);
  writeHeader(buf, 0, opcode, keyLength, extras.length, bodyLength, opaque);
  extras.copy(buf, HEADER);
  buf.write(key, HEADER + extras.length, 'utf8');
  value.copy(buf, HEADER + extras.length + keyLength);
  return buf;
}

/** GET: answered with the value (status 0) or key not found. */
export function getRequest(key: string, opaque: number): Buffer {
  return request(Opcode.Get, key, EMPTY, EMPTY, opaque);
}

/**
 * Quiet gets for every key (GETKQ: only hits are answered, each echoing its key) followed by one
 * NOOP, all with the same opaque, in one buffer: the NOOP's answer marks the end of the batch,
 * because memcached answers a connection's requests in order.
 */
export function getMultiRequest(keys: readonly string[], opaque: number): Buffer {
  const keyBytes = keys.map((key) => Buffer.byteLength(key));
  let total = HEADER;
  for (const n of keyBytes) total += HEADER + n;
  const buf = Buffer.allocUnsafe(total);
  let at = 0;
  keys.forEach((key, i) => {
    writeHeader(buf, at, Opcode.GetKQ, keyBytes[i], 0, keyBytes[i], opaque);
    at += HEADER;
    at += buf.write(key, at, 'utf8');
  });
  writeHeader(buf, at, Opcode.Noop, 0, 0, 0, opaque);
  return buf;
}

/**
 * SET or ADD with flags 0 and the given memcached expiry (see {@link toMemcachedExpiry}). A SET
 * with `cas` (the 8 bytes a GET answered with) stores only while the item is unchanged since that
 * GET, else the server answers "key exists" (or "key not found" once it is gone).
 */
export function storeRequest(
  opcode: typeof Opcode.Set | typeof Opcode.Add,
  key: string,
  value: Buffer,
  expiry: number,
  opaque: number,
  cas?: Buffer,
): Buffer {
  const extras = Buffer.alloc(8); // flags (4 bytes, 0), expiry (4 bytes)
  extras.writeUInt32BE(expiry, 4);
  const buf = request(opcode, key, extras, value, opaque);
  cas?.copy(buf, 16);
  return buf;
}

/**
 * DELETE: status 0 or key not found. With `cas` (the 8 bytes a GET answered with), the server
 * deletes only while the item is unchanged since that GET, else answers "key exists".
 */
export function deleteRequest(key: string, opaque: number, cas?: Buffer): Buffer {
  const buf = request(Opcode.Delete, key, EMPTY, EMPTY, opaque);
  cas?.copy(buf, 16);
  return buf;
}

/**
 * INCREMENT (`by >= 0`) or DECREMENT (`by < 0`, by `|by|`). An absent key is created at
 * `max(by, 0)` with the given expiry; memcached floors decrements at 0.
 */
export function counterRequest(key: string, by: number, expiry: number, opaque: number): Buffer {
  const extras = Buffer.alloc(20); // amount (8), initial (8), expiry (4)
  extras.writeBigUInt64BE(BigInt(Math.abs(by)), 0);
  extras.writeBigUInt64BE(BigInt(Math.max(by, 0)), 8);
  extras.writeUInt32BE(expiry, 16);
  return request(by < 0 ? Opcode.Decrement : Opcode.Increment, key, extras, EMPTY, opaque);
}

/** NOOP: always answered, in order; used to end a quiet batch and as a ping. */
export function noopRequest(opaque: number): Buffer {
  return request(Opcode.Noop, '', EMPTY, EMPTY, opaque);
}

/** FLUSH (no delay): every item on the server is invalidated at once; answered with status 0. */
export function flushRequest(opaque: number): Buffer {
  return request(Opcode.Flush, '', EMPTY, EMPTY, opaque);
}
