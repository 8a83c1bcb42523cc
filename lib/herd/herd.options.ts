import { at, invalid, milliseconds, onlyKnownKeys, optionNames } from '../options';

/**
 * Herd protection settings of `getOrSet` and `@Cached()`: per call, per decorator, and as module
 * defaults (`TieredCacheModule.forRoot({ herd })`).
 */
export interface HerdOptions {
  /**
   * How long (ms) an entry stays available as stale after its TTL. A caller that finds a stale
   * entry gets it at once (`X-Cache: STALE`, see `timeout`) while one caller in the whole cluster
   * refreshes it; if that refresh fails, the stale value keeps being served until `grace` ends
   * (fail-safe). Every tier keeps the entry for `ttl + grace`. Plain `get` never sees stale
   * values. `0`: no stale serving.
   * @default 0
   */
  grace?: number;
  /**
   * How long (ms) a caller waits for another process that holds the key's lease (and is
   * computing it) before computing the value itself. It is also the lease's TTL: a crashed
   * holder's lease runs out after at most this (plus up to 1 s on the servers), and the first
   * waiter to find it free takes it over and computes. The other waiters then wait for that new
   * holder, `lockTimeout` from when they saw it, instead of computing too (so a crash costs one
   * extra origin call, not one per process). A holder still holding the lease when a waiter's
   * `lockTimeout` passes is waited for until its lease must have run out (`lockTimeout` plus
   * the tier's TTL resolution, 1 s on memcached and Cassandra). A waiter follows at most 3 such
   * takeovers, so it waits at most 4 × (`lockTimeout` + TTL resolution) before computing itself
   * (a `hardTimeout` answers the caller earlier; the wait goes on behind it). A lease that
   * cannot be read is not waited on beyond `lockTimeout`. Choose it above the factory's usual
   * duration. A refresh
   * slower than `lockTimeout` minus 1 s (the tiers count lease TTLs in whole seconds) may have
   * lost its lease, and with it the guarantee that a delete made meanwhile in another process
   * wins (deletes made through the same process always win).
   * @default 5000
   */
  lockTimeout?: number;
  /**
   * Refresh hot entries before they expire, probabilistically (XFetch): a hit triggers a
   * background refresh when `now - delta * beta * ln(random()) >= expiry`, where `delta` is how
   * long the value took to compute. `true` means `beta = 1`; a number sets `beta` (above 1
   * refreshes earlier).
   * @default false
   */
  earlyRefresh?: boolean | number;
  /**
   * Soft timeout (ms) for a caller holding a stale value: how long it waits for the refresh
   * before it is answered with the stale value (the refresh goes on in the background and stores
   * its result). `0`: stale values are served at once (stale-while-revalidate).
   * @default 0
   */
  timeout?: number;
  /**
   * Hard timeout (ms) for a caller with no stale value: it rejects with a
   * {@link CacheTimeoutError} after this long; the factory goes on and stores its result.
   * `0`: wait as long as the factory takes.
   * @default 0
   */
  hardTimeout?: number;
}

/** {@link HerdOptions} with every default applied; `beta` 0 = no early refresh. */
export interface ResolvedHerdOptions {
  grace: number;
  lockTimeout: number;
  beta: number;
  timeout: number;
  hardTimeout: number;
}

export const HERD_DEFAULTS: ResolvedHerdOptions = {
  grace: 0,
  lockTimeout: 5000,
  beta: 0,
  timeout: 0,
  hardTimeout: 0,
};

/** The names of {@link HerdOptions}. */
export const HERD_OPTIONS = optionNames<HerdOptions>({
  grace: true,
  lockTimeout: true,
  earlyRefresh: true,
  timeout: true,
  hardTimeout: true,
});

/** The herd settings' names and each `alsoKnown` list's, built once per list. */
const knownLists = new WeakMap<readonly string[], readonly string[]>();

function knownWith(alsoKnown: readonly string[]): readonly string[] {
  let known = knownLists.get(alsoKnown);
  if (known === undefined) knownLists.set(alsoKnown, (known = [...HERD_OPTIONS, ...alsoKnown]));
  return known;
}

/**
 * Applies `options` over `base`, checking each field. `where` prefixes error messages, e.g.
 * `herd` or `@Cached()`.
 * @param alsoKnown given, `options` may hold only herd settings and these other keys (a
 *   decorator's `key`, `ttl`…; `[]` for herd settings alone): any other key is an
 *   `InvalidOptionError` naming the nearest valid one. Not given, other keys are not checked.
 */
export function resolveHerdOptions(
  options: HerdOptions | undefined,
  base: ResolvedHerdOptions = HERD_DEFAULTS,
  where = 'herd',
  alsoKnown?: readonly string[],
): ResolvedHerdOptions {
  if (options === undefined) return base;
  if (options === null || typeof options !== 'object') throw invalid(where, 'must be an object');
  if (alsoKnown !== undefined) onlyKnownKeys(where, options, knownWith(alsoKnown));
  // Most calls set no herd field (`{ ttl }`): nothing to check or build.
  if (
    options.grace === undefined &&
    options.lockTimeout === undefined &&
    options.earlyRefresh === undefined &&
    options.timeout === undefined &&
    options.hardTimeout === undefined
  )
    return base;
  const ms = (field: keyof HerdOptions & keyof ResolvedHerdOptions): number => {
    return milliseconds(at(where, field), options[field], base[field]);
  };
  let beta = base.beta;
  const early = options.earlyRefresh;
  if (early !== undefined) {
    if (typeof early === 'boolean') beta = early ? 1 : 0;
    else if (typeof early === 'number' && Number.isFinite(early) && early >= 0) beta = early;
    else
      throw invalid(
        at(where, 'earlyRefresh'),
        `${String(early)} is not true, false or a beta number >= 0`,
      );
  }
  return {
    grace: ms('grace'),
    lockTimeout: ms('lockTimeout'),
    beta,
    timeout: ms('timeout'),
    hardTimeout: ms('hardTimeout'),
  };
}
