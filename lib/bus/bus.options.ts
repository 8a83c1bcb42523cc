import {
  at,
  describeValue,
  integer,
  invalid,
  onlyKnownKeys,
  optionNames,
  optionsObject,
  positiveMilliseconds,
} from '../options';
import type { InvalidationTransport } from './invalidation-transport';
import { RedisTransport, type RedisClientLike } from './redis-transport';

/**
 * The invalidation bus (`bus` option): Redis through ioredis (an optional peer dependency), by
 * `url` or with a `client` of yours, or a `transport` of your own.
 */
export interface BusOptions {
  /** `'redis'` with `url` or `client`; leave it out with `transport`. */
  type?: 'redis';
  /** `redis://host:port[/db]` (`rediss://` for TLS): the bus opens its own two connections. */
  url?: string;
  /** An ioredis client: publishes go through it, the subscription through a duplicate of it. */
  client?: RedisClientLike;
  /** Another broker (see {@link InvalidationTransport}). */
  transport?: InvalidationTransport;
  /**
   * While the bus is down (not subscribed, or the broker not answering), entries new in the local
   * tiers (memory, and memcached marked `local: true`) live at most this long, ms (`>= 1`): the
   * staleness bound while invalidations cannot arrive. The normal cap returns with the bus.
   * @default 1000
   */
  degradedTtl?: number;
  /**
   * Keys waiting to be published at most (an integer >= 1): one publish is in flight at a time,
   * and the keys written meanwhile wait to go out together in the next. Past this many (a
   * stalled broker), they are dropped and counted; receivers see the gap and flush.
   * @default 10000
   */
  maxQueue?: number;
  /**
   * Redis: a command's deadline and the subscription's health check interval, ms.
   * @default 1000
   */
  timeout?: number;
}

const BUS_OPTIONS = optionNames<BusOptions>({
  type: true,
  url: true,
  client: true,
  transport: true,
  degradedTtl: true,
  maxQueue: true,
  timeout: true,
});

/** {@link BusOptions} checked, with defaults, and a way to build the transport. */
export interface BusConfig {
  degradedTtl: number;
  maxQueue: number;
  /** How long `connect()` waits for the subscription, ms. */
  timeoutMs: number;
  /** Builds the transport (loading ioredis when it is needed). */
  transport(): Promise<InvalidationTransport>;
}

/** Checks `bus` options (path `bus`); `undefined` when there is no bus. */
export function busConfig(options: BusOptions | undefined): BusConfig | undefined {
  if (options === undefined) return undefined;
  const o = optionsObject<BusOptions>('bus', options);
  onlyKnownKeys('bus', o, BUS_OPTIONS);
  const degradedTtl = Math.ceil(
    positiveMilliseconds(at('bus', 'degradedTtl'), o.degradedTtl, 1000),
  );
  const maxQueue = integer(at('bus', 'maxQueue'), o.maxQueue, 10_000, 1);
  const timeoutMs = Math.ceil(positiveMilliseconds(at('bus', 'timeout'), o.timeout, 1000));
  const base = { degradedTtl, maxQueue, timeoutMs };
  if (o.transport !== undefined) {
    if (o.type !== undefined || o.url !== undefined || o.client !== undefined)
      throw invalid('bus', 'give either transport, or type: "redis" with url or client, not both');
    const t = o.transport as Partial<InvalidationTransport> | null;
    const missing = ['publish', 'subscribe', 'close'].filter(
      (m) => typeof (t as Record<string, unknown> | null)?.[m] !== 'function',
    );
    if (missing.length > 0)
      throw invalid(
        at('bus', 'transport'),
        `must implement InvalidationTransport; ${describeValue(t)} lacks ${missing.join(', ')}`,
      );
    const transport = o.transport;
    return { ...base, transport: () => Promise.resolve(transport) };
  }
  if (o.type !== 'redis')
    throw invalid(
      at('bus', 'type'),
      `must be "redis" (with url or client), or give a transport; got ${o.type === undefined ? 'none' : (JSON.stringify(o.type) ?? describeValue(o.type))}`,
    );
  if ((o.url === undefined) === (o.client === undefined))
    throw invalid('bus', 'a redis bus needs exactly one of url and client');
  if (o.url !== undefined && (typeof o.url !== 'string' || !/^rediss?:\/\/./.test(o.url)))
    throw invalid(
      at('bus', 'url'),
      `must be a redis:// or rediss:// URL, got ${describeValue(o.url)}`,
    );
  const client = o.client;
  if (client !== undefined && typeof (client as { duplicate?: unknown })?.duplicate !== 'function')
    throw invalid(at('bus', 'client'), `must be an ioredis client, got ${describeValue(client)}`);
  return {
    ...base,
    transport: () => RedisTransport.create({ url: o.url, client, timeoutMs }),
  };
}
