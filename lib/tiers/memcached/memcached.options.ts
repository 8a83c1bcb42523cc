import {
  at,
  boolean,
  integer,
  invalid,
  onlyKnownKeys,
  optionNames,
  optionsObject,
  positiveMilliseconds,
} from '../../options';
import type { HostPort } from '../host-port';
import type { BaseTierOptions } from '../tier-options';
import { parseServer, parseServers } from './servers';

/** Where a memcached tier finds its nodes: an AWS ElastiCache configuration endpoint. */
export interface MemcachedDiscoveryOptions {
  /**
   * `host:port` of the cluster's configuration endpoint, e.g.
   * `my-cluster.abc123.cfg.use1.cache.amazonaws.com:11211`. It is asked `config get cluster`
   * (engine 1.4.14 and later), else `get AmazonElastiCache:cluster` (older engines). Each node is
   * reached at its IP when the configuration gives one, else at its host name. Required.
   */
  endpoint: string;
  /**
   * How often the endpoint is polled, ms (a positive integer). The tier also polls right after it
   * sees a connection error (at most once a second). A node list is applied only when its version
   * is greater than the one in use; an older or equal version is ignored, and a failed poll keeps
   * the current list.
   * @default 60000
   */
  intervalMs?: number;
  /**
   * What a failed *first* discovery does (the endpoint cannot be reached, or answers as a plain
   * memcached: `ERROR` / `END`). `false`: `connect()` rejects with an error naming the endpoint.
   * `true`: the endpoint itself is used as the only node (the IGNORE_CLUSTER_ERRORS of AWS's
   * cluster clients), and polling goes on, so a real configuration found later replaces it.
   * Later failed polls never change the node list, whatever this flag says.
   * @default false
   */
  ignoreErrors?: boolean;
  /**
   * Timeout of one question to the endpoint, connecting included, ms (a positive integer).
   * @default 2000
   */
  timeoutMs?: number;
}

/**
 * A small memcached pool that takes the keys of a failed node while it is out (the "gutter" of
 * memcache at Facebook), instead of spreading them over the surviving nodes.
 */
export interface MemcachedGutterOptions {
  /**
   * `host:port` of every gutter node (IPv6 as `[addr]:port`); keys are spread over them by a ring
   * of their own. They must not be nodes of the tier itself. Required.
   */
  servers: string[];
  /**
   * Longest TTL of an entry written to the gutter, ms (an integer >= 1000; memcached counts whole
   * seconds, rounded up): an entry gets `min(its TTL, ttl)`, and one without expiry gets `ttl`.
   * It bounds how long a value written to the gutter can be served, also by a process that did
   * not see the node fail.
   * @default 5000
   */
  ttl?: number;
}

/**
 * A memcached cluster, spoken to with memjs over the binary protocol. Give exactly one of
 * `servers` and `discovery` (an `InvalidOptionError` names the field otherwise).
 */
export interface MemcachedTierOptions extends BaseTierOptions {
  type: 'memcached';
  /**
   * `host:port` of every node (IPv6 as `[addr]:port`). Keys are spread over them by a
   * consistent-hash (ketama) ring. Required unless `discovery` is set; not allowed with it.
   * @default undefined: required unless `discovery` is set
   */
  servers?: string[];
  /**
   * Find the nodes through an ElastiCache configuration endpoint instead of listing them, and
   * follow the cluster as nodes are added, removed or replaced. Not allowed with `servers`.
   * @default undefined: the nodes are `servers`
   */
  discovery?: MemcachedDiscoveryOptions;
  /**
   * A memcached of this host only (e.g. one on localhost in front of the shared cluster), not
   * shared with other hosts: the invalidation bus drops other instances' keys from it, as from
   * the memory tier; it gets the memory tier's default TTL cap (5 s) and holds no lease, counter
   * or namespace generation. A flush (after a missed invalidation) does not empty the server:
   * the store stops serving from it for its TTL cap.
   * @default false
   */
  local?: boolean;
  /**
   * Per-operation timeout in ms, connecting included.
   * @default 500
   */
  timeout?: number;
  /**
   * Retries of a failed get/set/add/delete (an integer >= 0; never for counters). A retry goes to
   * the node owning the key at retry time: after a connection error the failed node is off the
   * ring (see `failoverTime`), so a node that just died costs callers nothing. A timeout is
   * retried too (costing another `timeout`), but does not take the node off the ring. `0` makes
   * every failure visible to the caller (the tier chain then treats it as a miss).
   * @default 1
   */
  retries?: number;
  /**
   * Values larger than this many bytes skip the tier (an integer >= 1).
   * @default 1047552 (1 MiB minus 1 KiB of item overhead)
   */
  maxValueBytes?: number;
  /**
   * How long a node whose request failed with a connection error (refused, reset, closed, or no
   * connection within `timeout`) or timed out (connected, but no answer within `timeout`: a hung
   * node) stays off the ring, ms (an integer >= 0). One such failure is enough: it already failed
   * every request waiting on that connection. Its keys go to the next node on the ring meanwhile
   * (about `1/n` of the keys, which miss once and are refilled from the next tier), or to the
   * `gutter` pool when there is one. Afterwards the next request probes it in the background
   * (a NOOP answered within `timeout`) and it rejoins the ring when it answers, else stays out
   * another `failoverTime`. When every node has failed, all are tried again as if none had.
   * `0` turns failover off: a failed node's keys fail (after `retries`) until it returns.
   * @default 30000
   */
  failoverTime?: number;
  /**
   * Send the keys of a failed node (see `failoverTime`) to this pool, with a short TTL, instead of
   * the surviving nodes: the survivors keep their load, and a node rejoining the ring is emptied
   * first (memcached `flush_all`) so it never serves a value older than writes made while it was
   * out. Not used when every node has failed.
   * @default undefined: a failed node's keys go to the next node on the ring, and a node that
   *   rejoins keeps what it held
   */
  gutter?: MemcachedGutterOptions;
  /**
   * Warm scale-out, ms (an integer from 0 to 86400000, a day): for this long after the server
   * list changes (discovery, or `setServers`), a key whose owner changed and that misses on its
   * new owner is read from its previous owner; a hit is answered and copied to the new owner
   * (a memcached `add`, so a value written there meanwhile wins, with the entry's remaining TTL).
   * Growing a cluster then costs no read of the next tier, nor an origin call, for the keys it
   * held. Removed nodes keep their connection for these reads until the period ends; one that is
   * gone fails once and is not read again, so its keys miss as without warmup. Meanwhile deletes
   * and sets of a moved key also delete it on its previous owner, so no older value comes back.
   * `0` turns it off: removed nodes are closed at once and moved keys miss.
   * @default 60000
   */
  warmup?: number;
}

/** Defaults of {@link MemcachedTierOptions}. */
const MEMCACHED_DEFAULTS = {
  timeout: 500,
  retries: 1,
  /** memcached's 1 MiB item limit minus 1 KiB for key and header. */
  maxValueBytes: 1024 * 1024 - 1024,
  failoverTime: 30_000,
  gutterTtl: 5000,
  warmup: 60_000,
} as const;

/** Longest `warmup`, ms: a day (well under the 2^31 - 1 ms a timer can wait). */
const MAX_WARMUP_MS = 86_400_000;

/** Defaults of {@link MemcachedDiscoveryOptions}. */
export const DISCOVERY_DEFAULTS = {
  intervalMs: 60_000,
  timeoutMs: 2_000,
  ignoreErrors: false,
} as const;

/** {@link MemcachedTierOptions} after validation and defaults. */
const MEMCACHED_OPTIONS = optionNames<MemcachedTierOptions>({
  type: true,
  ttl: true,
  name: true,
  servers: true,
  discovery: true,
  local: true,
  timeout: true,
  retries: true,
  maxValueBytes: true,
  failoverTime: true,
  gutter: true,
  warmup: true,
});

const GUTTER_OPTIONS = optionNames<MemcachedGutterOptions>({ servers: true, ttl: true });

const DISCOVERY_OPTIONS = optionNames<MemcachedDiscoveryOptions>({
  endpoint: true,
  intervalMs: true,
  ignoreErrors: true,
  timeoutMs: true,
});

export interface ResolvedMemcachedOptions {
  /** The validated servers; `undefined` with `discovery`. */
  servers: HostPort[] | undefined;
  /** The discovery options as given (validated by {@link resolveDiscoveryOptions}); or undefined. */
  discovery: MemcachedDiscoveryOptions | undefined;
  timeoutMs: number;
  retries: number;
  maxValueBytes: number;
  failoverMs: number;
  /** The validated gutter pool, or undefined. */
  gutter: ResolvedGutterOptions | undefined;
  /** `warmup`, ms; `0`: off. */
  warmupMs: number;
}

/** {@link MemcachedGutterOptions} after validation and defaults. */
export interface ResolvedGutterOptions {
  servers: HostPort[];
  ttlMs: number;
}

/** {@link MemcachedDiscoveryOptions} after validation and defaults. */
export interface ResolvedDiscoveryOptions {
  endpoint: HostPort;
  intervalMs: number;
  ignoreErrors: boolean;
  timeoutMs: number;
}

/**
 * Validates {@link MemcachedTierOptions} and applies defaults.
 * @param path where the options sit, for messages: `memcached` for a tier built directly,
 *   `tiers[1]` for one built by the store.
 * @throws InvalidOptionError naming the option by its full path, e.g. `tiers[1].servers[0]`,
 *   or unless exactly one of `servers` and `discovery` is given.
 */
export function resolveMemcachedOptions(
  options: MemcachedTierOptions,
  path: string,
): ResolvedMemcachedOptions {
  const o = optionsObject(path, options);
  onlyKnownKeys(path, o, MEMCACHED_OPTIONS);
  const timeoutMs = positiveMilliseconds(
    at(path, 'timeout'),
    o.timeout,
    MEMCACHED_DEFAULTS.timeout,
  );
  const retries = integer(at(path, 'retries'), o.retries, MEMCACHED_DEFAULTS.retries, 0);
  const maxValueBytes = integer(
    at(path, 'maxValueBytes'),
    o.maxValueBytes,
    MEMCACHED_DEFAULTS.maxValueBytes,
    1,
  );
  const failoverMs = integer(
    at(path, 'failoverTime'),
    o.failoverTime,
    MEMCACHED_DEFAULTS.failoverTime,
    0,
  );
  const warmupMs = integer(at(path, 'warmup'), o.warmup, MEMCACHED_DEFAULTS.warmup, 0);
  if (warmupMs > MAX_WARMUP_MS)
    throw invalid(at(path, 'warmup'), `${warmupMs} is more than ${MAX_WARMUP_MS} ms (a day)`);
  const hasServers = o.servers !== undefined;
  const hasDiscovery = o.discovery !== undefined;
  if (hasServers && hasDiscovery)
    throw invalid(
      at(path, 'discovery'),
      'not allowed together with "servers" (set either, not both)',
    );
  if (!hasServers && !hasDiscovery)
    throw invalid(
      at(path, 'servers'),
      'required (a "host:port" list), unless "discovery" ({ endpoint: "host:port" }) is set',
    );
  if (hasDiscovery) resolveDiscoveryOptions(o.discovery, at(path, 'discovery'));
  const servers = hasServers ? parseServers(o.servers, at(path, 'servers')) : undefined;
  const gutter =
    o.gutter === undefined ? undefined : resolveGutterOptions(o.gutter, at(path, 'gutter'));
  for (const [i, g] of (gutter?.servers ?? []).entries()) {
    if (servers?.some((s) => s.address === g.address)) {
      throw invalid(
        at(at(at(path, 'gutter'), 'servers'), i),
        `"${g.address}" is also in "servers": a gutter node must be a separate memcached`,
      );
    }
  }
  return {
    servers,
    discovery: o.discovery,
    timeoutMs,
    retries,
    maxValueBytes,
    failoverMs,
    gutter,
    warmupMs,
  };
}

function resolveGutterOptions(
  options: MemcachedGutterOptions,
  path: string,
): ResolvedGutterOptions {
  const o = optionsObject(path, options);
  onlyKnownKeys(path, o, GUTTER_OPTIONS);
  return {
    servers: parseServers(o.servers, at(path, 'servers')),
    ttlMs: integer(at(path, 'ttl'), o.ttl, MEMCACHED_DEFAULTS.gutterTtl, 1000),
  };
}

/**
 * Validates {@link MemcachedDiscoveryOptions} and applies defaults.
 * @param path where the options sit, e.g. `tiers[1].discovery`.
 * @throws InvalidOptionError naming the option by its full path.
 */
export function resolveDiscoveryOptions(
  options: MemcachedDiscoveryOptions | undefined,
  path: string,
): ResolvedDiscoveryOptions {
  if (options === undefined)
    throw invalid(path, 'expected { endpoint: "host:port", intervalMs?, ignoreErrors? }');
  const o = optionsObject(path, options);
  onlyKnownKeys(path, o, DISCOVERY_OPTIONS);
  return {
    endpoint: parseServer(o.endpoint, at(path, 'endpoint')),
    intervalMs: integer(at(path, 'intervalMs'), o.intervalMs, DISCOVERY_DEFAULTS.intervalMs, 1),
    ignoreErrors: boolean(
      at(path, 'ignoreErrors'),
      o.ignoreErrors,
      DISCOVERY_DEFAULTS.ignoreErrors,
    ),
    timeoutMs: integer(at(path, 'timeoutMs'), o.timeoutMs, DISCOVERY_DEFAULTS.timeoutMs, 1),
  };
}
