import type { Clock } from '../clock';
import {
  hasJsonBody,
  ownCopy,
  type Codec,
  type EntryMeta,
  type Tagged,
} from '../serialization/codec';
import { copyJsonTree, nestedKeys } from '../serialization/json-tree';
import { LocalRecord } from '../tiers/tier.interface';

/**
 * What a tier holds:
 * - `encoded`: the codec's bytes (every shared tier);
 * - `copies`: local records that hand every reader its own copy (a local tier's default);
 * - `shared`: local records that hand out the stored object itself (`serialize: false`).
 */
export type PayloadMode = 'encoded' | 'copies' | 'shared';

/** A value on its way into the tiers: encoded once, shaped per tier on demand. */
export class Outgoing {
  constructor(
    readonly value: unknown,
    readonly expiresAt: number,
    readonly encoded: Buffer,
    readonly meta?: EntryMeta,
    /** The key that was hashed, for an entry under a hashed final key (see `Codec.encode`). */
    readonly key?: string,
    readonly tagged?: Tagged,
  ) {}

  payloadFor(mode: PayloadMode): Buffer | LocalRecord {
    return mode === 'encoded'
      ? this.encoded
      : recordFor(mode, this.value, this.encoded, this.expiresAt, this.meta, this.key, this.tagged);
  }
}

/**
 * What a local tier keeps for `value`, whose encoded entry is `encoded`, with its read-through
 * metadata, its tags and (under a hashed final key) the key that was hashed, if any. In `copies` mode
 * objects are never kept as the caller's (or another reader's) own: a JSON tree gets a private
 * copy; any other object keeps its bytes, in a buffer of their own (a slice would pin its whole
 * parent: a socket read, or the 8 KiB pool `allocUnsafe` uses).
 */
export function recordFor(
  mode: PayloadMode,
  value: unknown,
  encoded: Buffer,
  expiresAt: number,
  meta: EntryMeta | undefined,
  key: string | undefined,
  tagged: Tagged | undefined,
): LocalRecord {
  let kept = value;
  let copy: null | undefined;
  let bytes: Buffer | undefined;
  if (mode === 'copies' && typeof value === 'object' && value !== null) {
    if (hasJsonBody(encoded)) {
      kept = copyJsonTree(value);
      copy = null;
    } else {
      kept = undefined;
      bytes = ownCopy(encoded);
    }
  }
  const extras =
    bytes === undefined && key === undefined && tagged === undefined
      ? undefined
      : { encoded: bytes, key, tagged };
  return new LocalRecord(kept, expiresAt, encoded.length, meta?.staleAt, meta?.delta, copy, extras);
}

/**
 * What a reader of a local record gets: its own copy, unless the record shares its object.
 * @throws CacheDecodeError when kept bytes do not decode (only a fault in memory gets there).
 */
export function readRecord(record: LocalRecord, codec: Codec): unknown {
  const copy = record.copy;
  if (copy !== undefined) {
    // The copy hint is worked out on the first read, not on the backfill: many are never re-read.
    return copyJsonTree(record.value, copy ?? (record.copy = nestedKeys(record.value as object)));
  }
  const encoded = record.encoded;
  return encoded === undefined ? record.value : codec.decode(encoded).value;
}

/** Whether a local record is live and not past its logical expiry; reads the clock only if needed. */
export function isFresh(record: LocalRecord, clock: Clock): boolean {
  const expiresAt = record.expiresAt;
  const staleAt = record.staleAt;
  if (expiresAt === 0 && !staleAt) return true;
  const now = clock.now();
  return (expiresAt === 0 || expiresAt > now) && (!staleAt || staleAt > now);
}
