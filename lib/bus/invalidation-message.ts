/**
 * One message on the bus: what one sender invalidated during one tick.
 * - `from`: the sender's instance id (a receiver ignores its own messages);
 * - `seq`: the sender's sequence number, 1, 2, 3… (a receiver that sees one skipped may have
 *   missed an invalidation);
 * - `at`: when it was sent (epoch ms), for delivery-time figures;
 * - `born`: when the sender's bus was made (epoch ms): a receiver that was up since before then
 *   and first hears of it at a number past 1 has missed its first messages;
 * - `keys`: keys written, deleted or counted, as the caller gave them (never values);
 * - `generation`: set when the sender cleared the namespace: its new generation;
 * - `tags`: tags invalidated, each with its mode and when (see {@link TagInvalidation}).
 */
export interface InvalidationMessage {
  from: string;
  seq: number;
  at: number;
  born: number;
  keys: string[];
  generation?: number;
  tags?: TagInvalidation[];
}

/**
 * One tag invalidation: entries tagged `tag` written at `at` (epoch ms) or before are gone
 * (`delete`) or stale (`expire`); `by` is the stamp origin of the store that made it (see
 * `TagTimes.stamp`).
 */
export interface TagInvalidation {
  tag: string;
  mode: 'delete' | 'expire';
  at: number;
  by: number;
}

/** Format version: a receiver ignores (and counts) messages of another. */
const VERSION = 1;

export function encodeMessage(m: InvalidationMessage): Buffer {
  return Buffer.from(
    JSON.stringify({
      v: VERSION,
      f: m.from,
      s: m.seq,
      t: m.at,
      b: m.born,
      k: m.keys,
      ...(m.generation !== undefined && { g: m.generation }),
      ...(m.tags !== undefined &&
        m.tags.length > 0 && {
          x: m.tags.map((t) => [t.tag, t.mode === 'delete' ? 0 : 1, t.at, t.by]),
        }),
    }),
  );
}

/**
 * How every message of sender `from` begins: a receiver skips its own messages (the broker sends
 * them back too) by comparing these bytes, without parsing them.
 */
export function senderPrefix(from: string): Buffer {
  return Buffer.from(`{"v":${VERSION},"f":${JSON.stringify(from)},`);
}

/** The message in `payload`, or a string saying why it is not one. */
export function decodeMessage(payload: Buffer): InvalidationMessage | string {
  let raw: unknown;
  try {
    raw = JSON.parse(payload.toString('utf8'));
  } catch {
    return 'not JSON';
  }
  const o = raw as {
    v?: unknown;
    f?: unknown;
    s?: unknown;
    t?: unknown;
    b?: unknown;
    k?: unknown;
    g?: unknown;
    x?: unknown;
  };
  if (o === null || typeof o !== 'object') return 'not an object';
  if (o.v !== VERSION) return `format version ${String(o.v)}, expected ${VERSION}`;
  if (typeof o.f !== 'string' || o.f === '') return 'no sender id';
  if (!Number.isSafeInteger(o.s) || (o.s as number) < 1) return 'no sequence number';
  if (!isStrings(o.k)) return 'keys are not a list of strings';
  if (o.g !== undefined && !Number.isSafeInteger(o.g)) return 'generation is not an integer';
  const tags = o.x === undefined ? undefined : tagsOf(o.x);
  if (tags === null) return 'tags are not a list of [tag, mode, time, origin]';
  return {
    from: o.f,
    seq: o.s as number,
    at: typeof o.t === 'number' ? o.t : 0,
    born: typeof o.b === 'number' ? o.b : 0,
    keys: o.k,
    generation: o.g as number | undefined,
    tags,
  };
}

function tagsOf(x: unknown): TagInvalidation[] | null {
  if (!Array.isArray(x)) return null;
  const out: TagInvalidation[] = [];
  for (const t of x as unknown[]) {
    if (!Array.isArray(t) || t.length !== 4) return null;
    const [tag, mode, at, by] = t as unknown[];
    if (typeof tag !== 'string' || (mode !== 0 && mode !== 1) || typeof at !== 'number')
      return null;
    if (!Number.isInteger(by)) return null;
    out.push({ tag, mode: mode === 0 ? 'delete' : 'expire', at, by: by as number });
  }
  return out;
}

function isStrings(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === 'string');
}
