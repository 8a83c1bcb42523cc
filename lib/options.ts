import { InvalidOptionError } from './errors';

/**
 * Path-aware option checks. Every check is given the option's full path (`tiers[1].timeout`,
 * `herd.grace`), so its error names the option where the user wrote it; nothing rewrites a
 * message afterwards.
 */

/** The path of `field` under `path`: `a.b`, or `a[0]` for an index. */
export function at(path: string, field: string | number): string {
  if (typeof field === 'number') return `${path}[${field}]`;
  return path === '' ? field : `${path}.${field}`;
}

/** An {@link InvalidOptionError} for the option at `path`. */
export function invalid(path: string, problem: string): InvalidOptionError {
  return new InvalidOptionError(path, problem);
}

/** `value` as an options object (`undefined` gives `{}`). */
export function optionsObject<T extends object>(path: string, value: T | undefined): T {
  if (value === undefined) return {} as T;
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw invalid(path, `must be an object, got ${describeValue(value)}`);
  return value;
}

/** A duration in ms, `>= 0` (`0` usually meaning "none"); `fallback` when absent. */
export function milliseconds(path: string, value: unknown, fallback: number, note = ''): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0)
    throw invalid(path, `${String(value)} is not a number of milliseconds >= 0${note}`);
  return value;
}

/** A duration in ms, `> 0`; `fallback` when absent. */
export function positiveMilliseconds(path: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
    throw invalid(path, `${String(value)} is not a number of milliseconds > 0`);
  return value;
}

/** An integer `>= min`; `fallback` when absent. */
export function integer(path: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min)
    throw invalid(path, `${String(value)} is not an integer >= ${min}`);
  return value;
}

/** `true` or `false`; `fallback` when absent. */
export function boolean(path: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalid(path, `${String(value)} is not true or false`);
  return value;
}

/** A short description of a value's type for messages. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}
