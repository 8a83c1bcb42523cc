import { deserialize, serialize } from 'node:v8';

/**
 * `v8.deserialize` builds objects in Node's main realm. Inside a `vm` context (Jest runs every
 * test file in one) those are not `instanceof` the context's own Map, Set, Date or Array, and
 * Jest's equality rejects them. Where the realms differ (never in a plain Node process, where
 * this costs nothing) decoded values are rebuilt with this realm's constructors.
 */
export const SAME_REALM = deserialize(serialize([])) instanceof Array;

export function adoptRealm(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Buffer.isBuffer(value)) return value;
  if (ArrayBuffer.isView(value)) {
    const Ctor = (globalThis as unknown as Record<string, new (v: unknown) => unknown>)[
      value.constructor.name
    ];
    return typeof Ctor === 'function' ? new Ctor(value) : value;
  }
  const tag = Object.prototype.toString.call(value);
  switch (tag) {
    case '[object Array]':
      // Array.from, not .map: map would build the array with the foreign realm's species.
      return Array.from(value as unknown[], (v) => adoptRealm(v));
    case '[object Map]':
      return new Map(
        [...(value as Map<unknown, unknown>)].map(([k, v]) => [adoptRealm(k), adoptRealm(v)]),
      );
    case '[object Set]':
      return new Set([...(value as Set<unknown>)].map(adoptRealm));
    case '[object Date]':
      return new Date((value as Date).getTime());
    case '[object RegExp]':
      return new RegExp((value as RegExp).source, (value as RegExp).flags);
    case '[object Object]': {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(value))
        out[k] = adoptRealm((value as Record<string, unknown>)[k]);
      return out;
    }
    default:
      return value;
  }
}
