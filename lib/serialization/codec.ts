import { deserialize, serialize } from 'node:v8';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { CacheDecodeError } from '../errors';
import { adoptRealm, SAME_REALM } from './realm';
import { at, integer, invalid, onlyKnownKeys, optionNames } from '../options';

/**
 * The one codec at the store boundary: turns a value plus its expiry into bytes that every tier
 * can hold, and back.
 *
 * Layout (format 1):
 *
 * | offset | size | field                                                      |
 * | ------ | ---- | ---------------------------------------------------------- |
 * | 0      | 1    | format byte `0xC7` (never an ASCII digit, see below)       |
 * | 1      | 1    | flags: bit 0 = body is deflated, bit 1 = body is JSON,     |
 * |        |      | bit 2 = read-through metadata, bit 3 = key, bit 4 = tags   |
 * | 2      | 8    | expiresAt, float64 big-endian, epoch ms, `0` = never      |
 * | 10     | 16   | only with flag bit 2: staleAt, then delta (float64 BE)     |
 * | 10/26  | 4+n  | only with flag bit 3: key length n (uint32 BE), key UTF-8 |
 * | …      | 13+… | only with flag bit 4: tagged at (float64 BE), by (uint32   |
 * |        |      | BE), tag count (uint8), each tag: length (uint16 BE), UTF-8|
 * | …      | …    | body: JSON (flag bit 1) or V8 structured serialization     |
 *
 * `staleAt` and `delta` are the read-through metadata of `getOrSet` (see `herd/`): the logical
 * expiry (an entry stays readable, as stale, until `expiresAt`, which includes the grace period)
 * and how long the value took to compute (for early refresh). Plain `set` writes omit them.
 *
 * The key is stored for entries under a hashed final key only (long keys, or keys with spaces
 * or control characters: see `KeyBuilder`), whose hash cannot be turned back into the key, so
 * that iterating a tier can name them (`TieredStore.iterate`); a plain final key names its entry
 * itself. Entries without the flag (all of those written before it existed) decode as before.
 * A reader that predates the flag cannot decode an entry that has it (a corrupt body: a miss).
 *
 * Tags (see `store/tag-times.ts`) travel the same way: the entry's tags and when it was written
 * (for a read-through entry, when its computation began), which readers compare with the times
 * its tags were invalidated. The same holds for readers that predate that flag.
 *
 * Values that JSON carries exactly (plain objects and arrays of strings, finite numbers other
 * than -0, booleans and `null`: the bulk of what apps cache) get a UTF-8 JSON body, which V8
 * parses several times faster than anything else. Every other value uses Node's built-in
 * `v8.serialize`: it keeps Date, Buffer, Uint8Array and the other typed arrays, Map, Set, BigInt,
 * RegExp, `undefined`, NaN and -0 exactly, is maintained with the runtime, and needs no
 * dependency. Class instances come back as plain objects (own enumerable properties only), like
 * with structured cloning. The one walk that checks a value for what cannot be cached also tells
 * which body it gets.
 *
 * A payload made only of ASCII digits is a memcached counter (written by `incr`/`decr`) and
 * decodes to that number with no expiry, so counters are readable with `get`.
 */
export const FORMAT_V1 = 0xc7;
const FLAG_DEFLATED = 0b1;
const FLAG_JSON = 0b10;
const FLAG_META = 0b100;
const FLAG_KEY = 0b1000;
const FLAG_TAGS = 0b10000;
const HEADER_BYTES = 10;
const META_BYTES = 16;
/** The key's length field. */
const KEY_LENGTH_BYTES = 4;
/** The tags section's fixed part: when the entry was tagged, by which store, the tag count. */
const TAGS_HEADER_BYTES = 13;

/**
 * How deeply a value's objects, arrays, Maps and Sets may nest (a value inside 1000 of them is
 * cached; one more level is refused with a `TypeError`). Well under where V8 runs out of stack
 * on Node 20 with the default stack size (measured from the top of the stack): decoding a V8 body
 * of nested objects (`v8.deserialize`) overflows at about 1,950 levels, `v8.serialize` at about
 * 3,100, `JSON.stringify` at about 4,200; the rest is left to the caller's own stack frames.
 */
export const MAX_VALUE_DEPTH = 1000;

export interface CodecOptions {
  /**
   * Bodies at least this many bytes long are compressed with raw deflate (kept only when that
   * makes them smaller). `0` turns compression off.
   * @default 8192
   */
  compressThreshold?: number;
  /**
   * zlib level, 1 (fastest) to 9 (smallest): caches want speed over ratio.
   * @default 1
   */
  compressLevel?: number;
}

const CODEC_OPTIONS = optionNames<CodecOptions>({ compressThreshold: true, compressLevel: true });

/** A decoded entry. */
export interface CacheRecord<T = unknown> {
  value: T;
  /** Epoch ms after which the entry is gone; `0` = never. */
  expiresAt: number;
  /**
   * Read-through entries only: epoch ms of the logical expiry, after which the value is stale
   * (served only by `getOrSet` within its grace period, until `expiresAt`); `0` = never.
   */
  staleAt?: number;
  /** Read-through entries only: ms the value took to compute (XFetch's delta). */
  delta?: number;
  /**
   * Entries under a hashed final key only: the key that was hashed (what iteration lists; see
   * {@link Codec.encode}).
   */
  key?: string;
  /** Tagged entries only: their tags and when they were written (see {@link Tagged}). */
  tagged?: Tagged;
}

/**
 * The tags of an entry and when it was written (epoch ms; for a read-through entry, when its
 * computation began), by which store (see `TagTimes.stamp`): an invalidation of one of the tags
 * at that time or later covers it.
 */
export interface Tagged {
  readonly tags: readonly string[];
  readonly at: number;
  /** The writing store's stamp origin (a random uint32, see `TagTimes`). */
  readonly by: number;
  /**
   * The reading store's verdict on the entry, while nothing it knows of tag times changes
   * (see `TagTimes.judge`). @internal
   */
  memo?: { version: number; until: number; verdict: number };
}

/** Most tags one entry may carry (their names are stored in the entry). */
export const MAX_TAGS_PER_ENTRY = 64;
/** Longest tag, in bytes of UTF-8. */
export const MAX_TAG_BYTES = 256;

/** Read-through metadata stored with an entry (see {@link CacheRecord}). */
export interface EntryMeta {
  staleAt: number;
  delta: number;
}

export class Codec {
  private readonly threshold: number;
  private readonly level: number;

  /** @param path where `options` sit, for error messages (the store's is `serializer`). */
  constructor(options: CodecOptions = {}, path = '') {
    onlyKnownKeys(path, options, CODEC_OPTIONS);
    this.threshold = integer(at(path, 'compressThreshold'), options.compressThreshold, 8192, 0);
    const level = options.compressLevel ?? 1;
    if (!Number.isInteger(level) || level < 1 || level > 9)
      throw invalid(at(path, 'compressLevel'), `${String(level)} is not an integer from 1 to 9`);
    this.level = level;
  }

  /**
   * Encodes a value. Throws a `TypeError` naming the path of anything that cannot be cached
   * (a function, a symbol, a circular reference, a WeakMap, a Promise, objects nested deeper
   * than {@link MAX_VALUE_DEPTH} levels…).
   * @param key the key that was hashed, for an entry under a hashed final key only (see
   *   {@link CacheRecord.key}); plain final keys name their entry themselves.
   */
  encode(
    value: unknown,
    expiresAt: number,
    meta?: EntryMeta,
    key?: string,
    tagged?: Tagged,
  ): Buffer {
    const json = inspect(value);
    let body: Buffer;
    let flags = 0;
    if (json) {
      body = Buffer.from(JSON.stringify(value), 'utf8');
      flags |= FLAG_JSON;
    } else {
      try {
        body = serialize(value);
      } catch (err) {
        throw new TypeError(`value cannot be cached: ${(err as Error).message}`, { cause: err });
      }
    }
    if (this.threshold > 0 && body.length >= this.threshold) {
      const deflated = deflateRawSync(body, { level: this.level });
      if (deflated.length < body.length) {
        body = deflated;
        flags |= FLAG_DEFLATED;
      }
    }
    let header = meta ? HEADER_BYTES + META_BYTES : HEADER_BYTES;
    if (meta) flags |= FLAG_META;
    const keyBytes = key === undefined ? 0 : Buffer.byteLength(key);
    if (key !== undefined) {
      flags |= FLAG_KEY;
      header += KEY_LENGTH_BYTES + keyBytes;
    }
    const tagsAt = header;
    if (tagged !== undefined) {
      flags |= FLAG_TAGS;
      header += TAGS_HEADER_BYTES;
      for (const tag of tagged.tags) header += 2 + Buffer.byteLength(tag);
    }
    const out = Buffer.allocUnsafe(header + body.length);
    out[0] = FORMAT_V1;
    out[1] = flags;
    out.writeDoubleBE(expiresAt, 2);
    if (meta) {
      out.writeDoubleBE(meta.staleAt, HEADER_BYTES);
      out.writeDoubleBE(meta.delta, HEADER_BYTES + 8);
    }
    if (key !== undefined) {
      const at = tagsAt - keyBytes;
      out.writeUInt32BE(keyBytes, at - KEY_LENGTH_BYTES);
      out.write(key, at, 'utf8');
    }
    if (tagged !== undefined) {
      out.writeDoubleBE(tagged.at, tagsAt);
      out.writeUInt32BE(tagged.by, tagsAt + 8);
      out[tagsAt + 12] = tagged.tags.length;
      let at = tagsAt + TAGS_HEADER_BYTES;
      for (const tag of tagged.tags) {
        const n = out.write(tag, at + 2, 'utf8');
        out.writeUInt16BE(n, at);
        at += 2 + n;
      }
    }
    body.copy(out, header);
    return out;
  }

  /** Decodes bytes written by {@link encode} (or a memcached counter). Throws {@link CacheDecodeError}. */
  decode(bytes: Uint8Array): CacheRecord {
    if (bytes.length === 0) throw new CacheDecodeError('empty payload');
    if (bytes[0] !== FORMAT_V1) {
      if (isAsciiDigits(bytes))
        return { value: Number(Buffer.from(bytes).toString('latin1')), expiresAt: 0 };
      throw new CacheDecodeError(`unknown format byte 0x${bytes[0].toString(16).padStart(2, '0')}`);
    }
    if (bytes.length < HEADER_BYTES)
      throw new CacheDecodeError(`truncated header (${bytes.length} bytes)`);
    const buf = Buffer.isBuffer(bytes)
      ? bytes
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    const flags = buf[1];
    const expiresAt = buf.readDoubleBE(2);
    let header = HEADER_BYTES;
    let record: CacheRecord;
    if (flags & FLAG_META) {
      header += META_BYTES;
      if (bytes.length < header)
        throw new CacheDecodeError(`truncated header (${bytes.length} bytes)`);
      record = {
        value: undefined,
        expiresAt,
        staleAt: buf.readDoubleBE(HEADER_BYTES),
        delta: buf.readDoubleBE(HEADER_BYTES + 8),
      };
    } else {
      record = { value: undefined, expiresAt };
    }
    if (flags & FLAG_KEY) {
      if (bytes.length < header + KEY_LENGTH_BYTES)
        throw new CacheDecodeError(`truncated header (${bytes.length} bytes)`);
      const end = header + KEY_LENGTH_BYTES + buf.readUInt32BE(header);
      if (bytes.length < end) throw new CacheDecodeError(`truncated key (${bytes.length} bytes)`);
      record.key = buf.toString('utf8', header + KEY_LENGTH_BYTES, end);
      header = end;
    }
    if (flags & FLAG_TAGS) header = readTags(buf, header, record);
    try {
      const deflated = (flags & FLAG_DEFLATED) !== 0;
      if (flags & FLAG_JSON) {
        // An uncompressed body (the common case) is read in place.
        const text = deflated
          ? inflateRawSync(buf.subarray(header)).toString('utf8')
          : buf.toString('utf8', header);
        record.value = JSON.parse(text);
      } else {
        // `deserialize` makes Buffers and byte arrays views of the bytes it reads: give it bytes of
        // its own, so no decoded value shares (or pins) memory with the stored entry, a socket
        // read or another reader's value. An inflated body is already fresh.
        const body = buf.subarray(header);
        const value: unknown = deserialize(deflated ? inflateRawSync(body) : ownCopy(body));
        record.value = SAME_REALM ? value : adoptRealm(value);
      }
      return record;
    } catch (err) {
      throw new CacheDecodeError(`corrupt body: ${(err as Error).message}`, { cause: err });
    }
  }
}

/**
 * When the entry `bytes` hold expires (epoch ms, `0`: never), read off the header alone;
 * `undefined` for bytes {@link Codec.encode} did not write (a counter's digits, anything else).
 */
export function expiresAtOf(bytes: Uint8Array): number | undefined {
  if (bytes.length < HEADER_BYTES || bytes[0] !== FORMAT_V1) return undefined;
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).readDoubleBE(2);
}

/** Reads the tags section at `at` into `record`; returns where the body begins. */
function readTags(buf: Buffer, at: number, record: CacheRecord): number {
  const truncated = () => new CacheDecodeError(`truncated tags (${buf.length} bytes)`);
  if (buf.length < at + TAGS_HEADER_BYTES) throw truncated();
  const taggedAt = buf.readDoubleBE(at);
  const by = buf.readUInt32BE(at + 8);
  const tags: string[] = new Array<string>(buf[at + 12]);
  at += TAGS_HEADER_BYTES;
  for (let i = 0; i < tags.length; i++) {
    if (buf.length < at + 2) throw truncated();
    const end = at + 2 + buf.readUInt16BE(at);
    if (buf.length < end) throw truncated();
    tags[i] = buf.toString('utf8', at + 2, end);
    at = end;
  }
  record.tagged = { tags, at: taggedAt, by };
  return at;
}

/** Whether `bytes` were encoded with a JSON body: their value is a JSON tree (see `json-tree`). */
export function hasJsonBody(bytes: Uint8Array): boolean {
  return bytes.length >= HEADER_BYTES && bytes[0] === FORMAT_V1 && (bytes[1] & FLAG_JSON) !== 0;
}

/** A copy of `bytes` in memory of its own (never a slice of the shared allocation pool). */
export function ownCopy(bytes: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(copy);
  return copy;
}

function isAsciiDigits(bytes: Uint8Array): boolean {
  if (bytes.length > 20) return false;
  for (const b of bytes) if (b < 0x30 || b > 0x39) return false;
  return true;
}

/**
 * Checks a value before it is encoded, in one walk:
 * - throws a `TypeError` naming the path of what cannot be cached. V8's serializer would accept
 *   cycles; the cache contract is stricter: a value must be a tree (shared references are fine),
 *   at most {@link MAX_VALUE_DEPTH} levels deep (checked here, before V8 or this walk itself
 *   would run out of stack);
 * - returns whether JSON carries the value exactly (then it gets the faster JSON body).
 */
function inspect(value: unknown): boolean {
  const type = typeof value;
  if (type === 'string' || type === 'boolean' || value === null) return true;
  if (type === 'number') return isJsonNumber(value as number);
  if (type !== 'object' && type !== 'function' && type !== 'symbol') return false; // undefined, bigint
  return walk(value, '(value)', new Set());
}

function isJsonNumber(n: number): boolean {
  return Number.isFinite(n) && !Object.is(n, -0);
}

function walk(value: unknown, path: string, ancestors: Set<object>): boolean {
  const type = typeof value;
  if (type === 'function') throw new TypeError(`value cannot be cached: ${path} is a function`);
  if (type === 'symbol') throw new TypeError(`value cannot be cached: ${path} is a symbol`);
  if (type === 'string' || type === 'boolean' || value === null) return true;
  if (type === 'number') return isJsonNumber(value as number);
  if (type !== 'object') return false; // undefined, bigint: V8 body
  const obj = value as object;
  if (
    ArrayBuffer.isView(obj) ||
    obj instanceof Date ||
    obj instanceof RegExp ||
    obj instanceof ArrayBuffer
  ) {
    return false;
  }
  if (ancestors.has(obj)) {
    throw new TypeError(`value cannot be cached: ${path} is a circular reference`);
  }
  // The ancestors are the containers this one is nested in.
  if (ancestors.size >= MAX_VALUE_DEPTH) throw tooDeep(path);
  if (obj instanceof WeakMap || obj instanceof WeakSet || obj instanceof Promise) {
    throw new TypeError(`value cannot be cached: ${path} is a ${obj.constructor.name}`);
  }
  ancestors.add(obj);
  let json: boolean;
  if (obj instanceof Map) {
    json = false;
    let i = 0;
    for (const [k, v] of obj) {
      walk(k, `${path}.<key ${i}>`, ancestors);
      walk(v, `${path}.get(${describeKey(k)})`, ancestors);
      i++;
    }
  } else if (obj instanceof Set) {
    json = false;
    let i = 0;
    for (const v of obj) walk(v, `${path}.<item ${i++}>`, ancestors);
  } else if (Array.isArray(obj)) {
    json = Object.getPrototypeOf(obj) === Array.prototype;
    for (let i = 0; i < obj.length; i++) {
      // A hole reads as undefined, which JSON would turn into null.
      if (!(i in obj)) json = false;
      if (!walk(obj[i], `${path}[${i}]`, ancestors)) json = false;
    }
  } else {
    const proto: unknown = Object.getPrototypeOf(obj);
    json = proto === Object.prototype || proto === null;
    for (const k of Object.keys(obj)) {
      if (!walk((obj as Record<string, unknown>)[k], `${path}.${k}`, ancestors)) json = false;
    }
    if (Object.getOwnPropertySymbols(obj).length > 0) {
      // v8.serialize skips symbol-keyed properties: refusing is better than losing them silently.
      throw new TypeError(`value cannot be cached: ${path} has symbol-keyed properties`);
    }
  }
  ancestors.delete(obj);
  return json;
}

/**
 * The `TypeError` for a value nested deeper than {@link MAX_VALUE_DEPTH} levels; `path` is where
 * the first level too many sits (shortened: it has over a thousand steps).
 */
export function tooDeep(path: string): TypeError {
  const shown = path.length > 120 ? `${path.slice(0, 60)}…${path.slice(-40)}` : path;
  return new TypeError(
    `value cannot be cached: ${shown} is nested deeper than ${MAX_VALUE_DEPTH} levels`,
  );
}

function describeKey(k: unknown): string {
  return typeof k === 'string' ? JSON.stringify(k) : typeof k === 'object' ? '<object>' : String(k);
}
