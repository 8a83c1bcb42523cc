import { MAX_VALUE_DEPTH, tooDeep } from './codec';

/**
 * Copies of JSON trees: plain objects and arrays of strings, numbers, booleans and `null`, the
 * values the codec gives a JSON body (see `Codec`). The memory tier keeps such a value as a
 * private tree and hands every reader a copy, instead of bytes that every reader would parse.
 *
 * Written here, not taken from a library, because the libraries are slower or wrong for this
 * case. Copying the benchmark's product row (`npm run bench -- memory-copy`, one run): this copy
 * 0.06 µs (0.04 µs with its hint), klona/json 0.14 µs, rfdc 0.25 µs, `structuredClone` 1.66 µs,
 * decoding its bytes 0.84 µs; and rfdc drops an own `__proto__` key, which `JSON.parse` keeps.
 * Object spread is the fast part: V8 copies a plain object in one step, then only nested objects
 * and arrays are replaced by their copies.
 */

/**
 * A deep copy of `value`, a JSON tree. For a tree the codec would give a JSON body, the copy
 * equals `JSON.parse(JSON.stringify(value))`: plain objects (null-prototype ones become ordinary),
 * arrays, key order kept, an own `__proto__` key kept as a plain property, and a subtree
 * referenced twice copied twice.
 *
 * `nested`, from {@link nestedKeys} of the same tree, spares the scan of the top-level object for
 * what needs a deep copy: worth it for a tree copied on every read.
 *
 * @throws TypeError, the codec's, for a tree nested deeper than `MAX_VALUE_DEPTH` levels (the
 *   codec refuses to encode those, so a stored tree never is), instead of running out of stack.
 */
export function copyJsonTree<T>(value: T, nested?: readonly string[]): T {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return copyArray(value, 1) as T;
  if (nested === undefined) return copyObject(value, 1) as T;
  const source = value as Record<string, unknown>;
  const out: Record<string, unknown> = { ...source };
  for (let i = 0; i < nested.length; i++) {
    const k = nested[i];
    out[k] = copyNode(source[k] as object, 2);
  }
  return out as T;
}

const FLAT: readonly string[] = Object.freeze([]);

/** Shapes whose lists are shared; past this many, a shape gets a list of its own. */
const MAX_SHARED_LISTS = 1024;
/** The shared list of each shape seen, by the JSON of its keys (unambiguous, unlike a join). */
const sharedLists = new Map<string, readonly string[]>();

/**
 * The own keys of a tree's top-level object that hold objects or arrays (see {@link copyJsonTree}),
 * as a frozen list that every tree of the same shape shares: a local tier keeps a tree's list for
 * as long as the entry lives, and a list of its own per entry (an array grown by `push` holds 17
 * slots) would cost each read entry about 180 bytes.
 */
export function nestedKeys(tree: object): readonly string[] | undefined {
  if (Array.isArray(tree)) return undefined;
  let keys: string[] | undefined;
  for (const k of Object.keys(tree)) {
    const v = (tree as Record<string, unknown>)[k];
    if (typeof v === 'object' && v !== null) (keys ??= []).push(k);
  }
  if (keys === undefined) return FLAT;
  const shape = JSON.stringify(keys);
  let list = sharedLists.get(shape);
  if (list === undefined) {
    list = Object.freeze(keys.slice());
    if (sharedLists.size < MAX_SHARED_LISTS) sharedLists.set(shape, list);
  }
  return list;
}

/** A copy of `v`, an object or array at level `depth` of its tree (the top is level 1). */
function copyNode(v: object, depth: number): unknown {
  if (depth > MAX_VALUE_DEPTH) throw tooDeep('(value)…');
  return Array.isArray(v) ? copyArray(v, depth) : copyObject(v, depth);
}

function copyArray(source: readonly unknown[], depth: number): unknown[] {
  const length = source.length;
  const out = new Array<unknown>(length);
  for (let i = 0; i < length; i++) {
    const v = source[i];
    out[i] = typeof v !== 'object' || v === null ? v : copyNode(v, depth + 1);
  }
  return out;
}

function copyObject(source: object, depth: number): Record<string, unknown> {
  // Spread defines own properties: prototypes are dropped, and an own `__proto__` key stays an
  // own data property, so assigning it below sets that property, not the prototype.
  const out: Record<string, unknown> = { ...source };
  for (const k in out) {
    const v = out[k];
    // `Object.hasOwn`: for-in also visits enumerable keys inherited from a polluted prototype.
    if (typeof v !== 'object' || v === null || !Object.hasOwn(out, k)) continue;
    out[k] = copyNode(v, depth + 1);
  }
  return out;
}
