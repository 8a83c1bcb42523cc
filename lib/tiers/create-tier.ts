import { systemClock } from '../clock';
import { at, boolean, describeValue, invalid, milliseconds } from '../options';
import { CassandraTier } from './cassandra/cassandra.tier';
import { MemcachedTier } from './memcached/memcached.tier';
import { MemoryTier } from './memory/memory.tier';
import type { Tier } from './tier.interface';
import type { TierContext, TierOptions } from './tier-options';

/** A tier ready for the chain, with the policy its options ask of the store. */
export interface TierSetup {
  tier: Tier<unknown>;
  /**
   * Longest time an entry may live in it, ms; `0`: no cap; `undefined`: not set, the chain's
   * default (see `DEFAULT_LOCAL_TTL_CAP_MS`).
   */
  ttlCap: number | undefined;
  /**
   * Local tiers: hand out the stored object itself instead of a copy per reader
   * (`serialize: false`).
   */
  shareObjects: boolean;
  /** A shared tier of this host only (memcached `local: true`), see `TierSlot.perHost`. */
  perHost: boolean;
}

/** Built-in tier types and how to build each. */
const BUILT_IN = {
  memory: (o: TierOptions, c: TierContext) => new MemoryTier(o as never, c),
  memcached: (o: TierOptions, c: TierContext) => new MemcachedTier(o as never, c),
  cassandra: (o: TierOptions, c: TierContext) => new CassandraTier(o as never, c),
} as const;

/**
 * Turns one entry of `tiers: [...]` into a tier: options of a built-in type (`{ type: 'memory' }`,
 * `'memcached'`, `'cassandra'`), or an object of your own implementing {@link Tier}.
 *
 * @throws InvalidOptionError naming `path` (e.g. `tiers[1].servers[0]`) for invalid options, an
 *   unknown type, or an object that lacks what its capabilities promise.
 */
export function createTier(
  spec: TierOptions | Tier<unknown>,
  context: TierContext & { path: string },
): TierSetup {
  const { path } = context;
  if (spec === null || typeof spec !== 'object')
    throw invalid(
      path,
      `must be tier options ({ type: … }) or a tier object, got ${describeValue(spec)}`,
    );
  if (isTierObject(spec))
    return { tier: checkTier(spec, path), ttlCap: undefined, shareObjects: false, perHost: false };
  const options = spec as TierOptions;
  const build = Object.hasOwn(BUILT_IN, options.type)
    ? BUILT_IN[options.type as keyof typeof BUILT_IN]
    : undefined;
  if (build === undefined)
    throw invalid(
      at(path, 'type'),
      `${JSON.stringify((options as { type: unknown }).type)} is not one of ${Object.keys(BUILT_IN)
        .map((t) => JSON.stringify(t))
        .join(', ')} (or give a tier object)`,
    );
  const ttl = milliseconds(at(path, 'ttl'), options.ttl, NaN, ' (0 = no cap)');
  const ttlCap = Number.isNaN(ttl) ? undefined : Math.ceil(ttl);
  const tier = build(options, { clock: systemClock, ...context });
  const shareObjects = options.type === 'memory' && options.serialize === false;
  const perHost = options.type === 'memcached' && boolean(at(path, 'local'), options.local, false);
  return { tier, ttlCap, shareObjects, perHost };
}

function isTierObject(spec: object): spec is Tier<unknown> {
  return 'capabilities' in spec && typeof (spec as { get?: unknown }).get === 'function';
}

const REQUIRED = ['connect', 'get', 'getMany', 'set', 'setMany', 'delete', 'deleteMany', 'close'];

/** Checks that a tier object has what {@link Tier} requires and what its capabilities promise. */
function checkTier(tier: Tier<unknown>, path: string): Tier<unknown> {
  const caps = tier.capabilities;
  if (caps === null || typeof caps !== 'object')
    throw invalid(at(path, 'capabilities'), 'must be an object (see TierCapabilities)');
  if (typeof tier.name !== 'string' || tier.name === '')
    throw invalid(at(path, 'name'), 'a tier object needs a non-empty name');
  const needed = [...REQUIRED];
  if (caps.leases) needed.push('add', 'deleteIf');
  if (caps.counters) needed.push('increment');
  if (caps.enumerate) needed.push('entries');
  if (caps.local) needed.push('peek', 'put', 'clear');
  const missing = needed.filter(
    (m) => typeof (tier as unknown as Record<string, unknown>)[m] !== 'function',
  );
  if (missing.length > 0)
    throw invalid(path, `tier object "${tier.name}" lacks ${missing.join(', ')}`);
  if (caps.enumerate !== undefined && typeof caps.enumerate !== 'boolean')
    throw invalid(
      at(path, 'capabilities.enumerate'),
      `must be true or false, got ${describeValue(caps.enumerate)}`,
    );
  if (!(caps.ttlResolutionMs >= 1))
    throw invalid(at(path, 'capabilities.ttlResolutionMs'), 'must be a number of ms >= 1');
  if (!(caps.maxKeyBytes >= 64))
    throw invalid(at(path, 'capabilities.maxKeyBytes'), 'must be a number of bytes >= 64');
  if (caps.counters !== false && caps.counters !== 'atomic' && caps.counters !== 'additive')
    throw invalid(
      at(path, 'capabilities.counters'),
      `must be 'atomic', 'additive' or false, got ${JSON.stringify(caps.counters) ?? describeValue(caps.counters)}`,
    );
  if (caps.maxValueBytes !== undefined && !(caps.maxValueBytes >= 1))
    throw invalid(
      at(path, 'capabilities.maxValueBytes'),
      'must be a number of bytes >= 1 (or absent: no limit)',
    );
  return tier;
}
