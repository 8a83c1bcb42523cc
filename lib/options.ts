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

/**
 * The option names of an options type, as a list checked by the compiler: `names` must have
 * every key of `T` and no other, so an option added to the type without being added here (or
 * the other way round) fails to compile.
 */
export function optionNames<T extends object>(names: {
  readonly [K in keyof Required<T>]: true;
}): readonly string[] {
  return Object.freeze(Object.keys(names));
}

/**
 * Throws an {@link InvalidOptionError} for the first own key of `options` that is not one of
 * `known`, so that a typo (`ttL`, `server`) fails instead of quietly leaving an option at its
 * default: `tiers[0].ttL: unknown option (did you mean "ttl"?)`, or, when no valid name is
 * close, one that lists them. A key set to `undefined` counts too.
 */
export function onlyKnownKeys(path: string, options: object, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const near = nearestName(key, known);
    throw invalid(
      at(path, key),
      near === undefined
        ? `unknown option (valid here: ${known.join(', ')})`
        : `unknown option (did you mean ${JSON.stringify(near)}?)`,
    );
  }
}

/**
 * The name in `names` closest to `name` (edit distance, ignoring case, a swap of two neighbouring
 * letters counting as one edit), when it is close: at most a third of the longer name's length
 * apart (at least one edit); `undefined` otherwise. A tie goes to the first.
 */
export function nearestName(name: string, names: readonly string[]): string | undefined {
  const wanted = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of names) {
    const d = editDistance(wanted, candidate.toLowerCase());
    const limit = Math.max(1, Math.floor(Math.max(name.length, candidate.length) / 3));
    if (d <= limit && d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push([i]);
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        rows[0].push(j);
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, rows[i - 2][j - 2] + 1);
      rows[i].push(d);
    }
  }
  return rows[a.length][b.length];
}
