/**
 * A deterministic text form of method arguments for default cache keys: object keys are sorted
 * (so `{ a, b }` and `{ b, a }` give the same key), and Dates, Maps, Sets, BigInts, Buffers and
 * `undefined` are spelled distinctly. Long results are hashed by the key builder, not here.
 */
export function stableKey(value: unknown): string {
  return Array.isArray(value) ? writeArguments(value) : write(value, new Set());
}

/** No object is tracked while writing primitives. */
const NONE: Set<object> = new Set();

/**
 * An array as {@link write} spells it, without tracking cycles while its items are primitives
 * (most argument lists: ids, names, flags); with the first object, {@link write} does it all.
 */
function writeArguments(args: readonly unknown[]): string {
  let out = '[';
  for (let i = 0; i < args.length; i++) {
    if (i > 0) out += ',';
    if (!(i in args)) continue; // a hole, as `map` and `join` leave it
    const item = args[i];
    if (item !== null && typeof item === 'object') return write(args, new Set());
    out += write(item, NONE);
  }
  return `${out}]`;
}

function write(value: unknown, seen: Set<object>): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Object.is(value, -0) ? '-0' : String(value);
    case 'bigint':
      return `${value}n`;
    case 'boolean':
      return String(value);
    case 'undefined':
      return 'undefined';
    case 'function':
    case 'symbol':
      throw new TypeError(`cannot build a cache key from a ${typeof value} argument`);
  }
  if (value === null) return 'null';
  const obj = value as object;
  if (seen.has(obj)) throw new TypeError('cannot build a cache key from a circular argument');
  seen.add(obj);
  try {
    if (obj instanceof Date) return `Date(${obj.toISOString()})`;
    if (Buffer.isBuffer(obj)) return `Buffer(${obj.toString('base64')})`;
    if (ArrayBuffer.isView(obj)) {
      return `${obj.constructor.name}(${Buffer.from(obj.buffer, obj.byteOffset, obj.byteLength).toString('base64')})`;
    }
    if (Array.isArray(obj)) return `[${obj.map((v) => write(v, seen)).join(',')}]`;
    if (obj instanceof Map) {
      const entries = [...obj].map(([k, v]) => `${write(k, seen)}=>${write(v, seen)}`).sort();
      return `Map{${entries.join(',')}}`;
    }
    if (obj instanceof Set)
      return `Set{${[...obj]
        .map((v) => write(v, seen))
        .sort()
        .join(',')}}`;
    const keys = Object.keys(obj).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${write((obj as Record<string, unknown>)[k], seen)}`).join(',')}}`;
  } finally {
    seen.delete(obj);
  }
}
