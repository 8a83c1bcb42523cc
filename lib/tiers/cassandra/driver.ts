import { errors, policies, types, type Client, type ClientOptions } from 'cassandra-driver';
import { TierTimeoutError, messageOf } from '../../errors';
import type { ResolvedCassandraOptions } from './cassandra.options';

/**
 * What this tier needs of cassandra-driver 4.10 beyond its plain API: the client options, a
 * retry policy that never retries, the clean-up of a failed connect, a readable connect error,
 * and the concurrency bound of bulk calls.
 */

/** Statements of one bulk call in flight at once (the driver allows 2048 per connection). */
export const BULK_CONCURRENCY = 256;

/** Longest connect attempt per contact point, in ms. */
const MAX_CONNECT_TIMEOUT_MS = 5000;

/**
 * For non-idempotent statements (counter updates, lightweight transactions): a retry could
 * apply them twice.
 */
export const NEVER_RETRY = new policies.retry.FallthroughRetryPolicy();

/** Streams of one native-protocol (v3+) connection. */
const MAX_REQUESTS_PER_CONNECTION = 32_768;

/** The driver's client options for validated tier options. */
export function clientOptions(
  options: ResolvedCassandraOptions,
  consistency: number,
): ClientOptions {
  return {
    contactPoints: [...options.contactPoints],
    localDataCenter: options.localDataCenter,
    credentials: options.credentials,
    protocolOptions: { port: options.port },
    socketOptions: {
      connectTimeout: Math.min(Math.max(options.timeout, 1000), MAX_CONNECT_TIMEOUT_MS),
      readTimeout: options.timeout,
    },
    queryOptions: { consistency, prepare: true },
    // Native protocol v3 and later carry 32,768 requests per connection; the driver's default
    // of 2,048 made a burst of unawaited writes (a cache's normal load) fail with
    // BusyConnectionError instead of queueing on the server.
    pooling: { maxRequestsPerConnection: MAX_REQUESTS_PER_CONNECTION },
    // Reconnect within 5 s, not the driver's default of up to 10 minutes: a cache should serve
    // again soon after its servers return. It also bounds the reconnection timers a closed client
    // may leave behind after lost connections (cassandra-driver 4.10 does not clear them).
    policies: { reconnection: new policies.reconnection.ExponentialReconnectionPolicy(500, 5000) },
  };
}

/** The private parts of cassandra-driver 4.10's Client that {@link releaseClient} needs. */
interface ClientInternals {
  controlConnection?: { connection?: { closeAsync?: () => Promise<void> } | null };
  hosts?: { values(): HostInternals[] };
}

interface HostInternals {
  _healthResponseCountTimer?: NodeJS.Timeout | null;
  pool?: { clearNewConnectionAttempt?: () => void };
}

/**
 * Shuts a client down and frees what cassandra-driver 4.10's `shutdown()` can leave open:
 * - the control connection's own socket (and its heartbeat timer) when `connect()` failed after
 *   that socket opened, e.g. on a wrong `localDataCenter`;
 * - a host's health-check interval re-armed by a distance change, and a pool's scheduled
 *   reconnection, after connections were lost.
 * Either keeps the process alive after the tier is closed. Each step is guarded: a driver
 * without these internals is simply shut down.
 */
export async function releaseClient(client: Client): Promise<void> {
  await client.shutdown().catch(() => undefined);
  const internals = client as unknown as ClientInternals;
  await internals.controlConnection?.connection?.closeAsync?.().catch(() => undefined);
  for (const host of internals.hosts?.values() ?? []) {
    if (host._healthResponseCountTimer) clearInterval(host._healthResponseCountTimer);
    host.pool?.clearNewConnectionAttempt?.();
  }
}

/**
 * One line per host tried, from the driver's `NoHostAvailableError.innerErrors` (its own message
 * embeds whole stack traces), or the plain message of any other error.
 */
export function describeConnectError(err: unknown): string {
  const inner = (err as { innerErrors?: unknown } | null)?.innerErrors;
  if (inner && typeof inner === 'object' && Object.keys(inner).length > 0) {
    return Object.entries(inner)
      .map(([host, e]) => `${host}: ${messageOf(e)}`)
      .join('; ');
  }
  return messageOf(err);
}

/**
 * Runs `fn` over `items` with at most {@link BULK_CONCURRENCY} calls in flight (the driver
 * pipelines them on its connections); results in input order. Rejects with the first failure.
 */
export async function mapBounded<T, R>(
  items: readonly T[],
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(BULK_CONCURRENCY, items.length) }, worker));
  return results;
}

/**
 * `err` as a `TierTimeoutError` when the request timed out (see {@link isTimeout}), naming what
 * timed out (`what`: the tier and operation) and the limit; any other error as it is.
 */
export function asTimeoutError(err: unknown, what: string, timeoutMs: number): unknown {
  const where = isTimeout(err);
  if (!where) return err;
  const limit = where === 'client' ? `after ${timeoutMs} ms` : 'on the server (its own timeout)';
  return new TierTimeoutError(`${what} timed out ${limit}: ${describeConnectError(err)}`, {
    cause: err,
  });
}

/**
 * Whether a request failed for want of an answer in time: `client` when the driver's own timer ran
 * out (alone, or for every host tried), `server` when the coordinator answered with its read or
 * write timeout; false for any other failure.
 */
export function isTimeout(err: unknown): 'client' | 'server' | false {
  if (err instanceof errors.OperationTimedOutError) return 'client';
  if (err instanceof errors.ResponseError) {
    const { readTimeout, writeTimeout } = types.responseErrorCodes;
    return err.code === readTimeout || err.code === writeTimeout ? 'server' : false;
  }
  if (err instanceof errors.NoHostAvailableError) {
    const inner = Object.values(err.innerErrors ?? {});
    return inner.length > 0 && inner.every((e) => isTimeout(e) === 'client') ? 'client' : false;
  }
  return false;
}
