import { Socket } from 'node:net';
import { DiscoveryError, TieredCacheError, messageOf } from '../../../errors';
import {
  DISCOVERY_DEFAULTS,
  resolveDiscoveryOptions,
  type MemcachedDiscoveryOptions,
} from '../memcached.options';
import { parseServer } from '../servers';
import { parseClusterConfig, scanClusterReply, type ClusterConfig } from './cluster-config';

/** Polls asked for by connection errors are at least this far apart (or `intervalMs`, if less). */
const ERROR_POLL_GAP_MS = 1_000;

const CONFIG_COMMAND = 'config get cluster\r\n';
const LEGACY_COMMAND = 'get AmazonElastiCache:cluster\r\n';
const MAX_REPLY_BYTES = 1024 * 1024;

/**
 * Asks an ElastiCache configuration endpoint for the cluster's node list, once, on a fresh socket:
 * `config get cluster` first, then `get AmazonElastiCache:cluster` (engines before 1.4.14) when the
 * first answer is an error line.
 *
 * @param endpoint `host:port` of the configuration endpoint.
 * @param options `timeoutMs` bounds the whole exchange, connecting included (default 2000);
 *   `signal` aborts it (the socket is destroyed at once).
 * @throws DiscoveryError naming the endpoint: connection failure, timeout, a malformed reply, or
 *   (with `notElastiCache` set) a plain memcached.
 */
export function fetchClusterConfig(
  endpoint: string,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<ClusterConfig> {
  const target = parseServer(endpoint, 'endpoint');
  const timeoutMs = options.timeoutMs ?? DISCOVERY_DEFAULTS.timeoutMs;
  return new Promise<ClusterConfig>((resolve, reject) => {
    const socket = new Socket();
    let text = '';
    let legacy = false;
    let settled = false;
    const finish = (error: DiscoveryError | undefined, config?: ClusterConfig): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (error) reject(error);
      else resolve(config!);
    };
    const fail = (message: string, notElastiCache = false, cause?: unknown): void =>
      finish(
        new DiscoveryError(
          `ElastiCache discovery at ${target.address}: ${message}`,
          target.address,
          notElastiCache,
          { cause },
        ),
      );
    const onAbort = (): void => fail('aborted');
    const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort);

    socket.setNoDelay(true);
    socket.on('error', (error) => fail(error.message, false, error));
    socket.on('close', () => fail('connection closed before a complete answer'));
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.length > MAX_REPLY_BYTES) return fail(`reply larger than ${MAX_REPLY_BYTES} bytes`);
      let reply;
      try {
        reply = scanClusterReply(text);
      } catch (error) {
        return fail(messageOf(error), false, error);
      }
      switch (reply.kind) {
        case 'incomplete':
          return;
        case 'config':
          try {
            return finish(undefined, parseClusterConfig(reply.payload));
          } catch (error) {
            return fail(`malformed configuration: ${messageOf(error)}`, false, error);
          }
        case 'error':
        case 'miss':
          if (!legacy && reply.kind === 'error') {
            // Engines before 1.4.14, and plain memcached, do not know `config get`.
            legacy = true;
            text = text.slice(reply.length);
            socket.write(LEGACY_COMMAND);
            return;
          }
          return fail(
            `not an ElastiCache configuration endpoint (it answered ${
              legacy ? `"ERROR" to "config get cluster" and ` : ''
            }${JSON.stringify(reply.kind === 'miss' ? 'END' : reply.line)} to ${JSON.stringify(
              (legacy ? LEGACY_COMMAND : CONFIG_COMMAND).trim(),
            )})`,
            true,
          );
      }
    });
    socket.connect(target.port, target.host, () => socket.write(CONFIG_COMMAND));
  });
}

/** `error` with the name of the tier it is about in front of its message, when a {@link DiscoveryError}. */
export function namedAfter(name: string, error: unknown): unknown {
  if (!(error instanceof DiscoveryError)) return error;
  return new DiscoveryError(`${name}: ${error.message}`, error.endpoint, error.notElastiCache, {
    cause: error.cause,
  });
}

/**
 * Polls an ElastiCache configuration endpoint and hands every *newer* node list to `apply`.
 *
 * - {@link start} runs the first discovery. When it fails: with `ignoreErrors`, the endpoint
 *   itself becomes the only node (at version -1, so any real configuration later replaces it);
 *   without, it rejects with a {@link DiscoveryError} naming the endpoint.
 * - Then polls every `intervalMs` (one at a time, on an `unref`ed timer), and sooner when
 *   {@link requestRefresh} is called (the tier does on connection errors), at most once per
 *   second. A failed poll keeps the current node list ({@link lastError} tells why).
 * - A configuration is applied only when its version is greater than the current one.
 */
export class ElastiCacheDiscovery {
  /** `host:port` of the endpoint, as validated. */
  readonly endpoint: string;
  /** Poll interval, ms. */
  readonly intervalMs: number;
  /** Whether a failed first discovery falls back to the endpoint as the only node. */
  readonly ignoreErrors: boolean;
  /** Version of the node list applied last; `undefined` before the first, -1 for the fallback. */
  version: number | undefined;
  /** Questions asked to the endpoint so far. */
  polls = 0;
  /** Why the last poll failed, `undefined` when it succeeded. */
  lastError: Error | undefined;

  private readonly timeoutMs: number;
  private timer: NodeJS.Timeout | undefined;
  private timerDueAt = Infinity;
  private lastPollAt = -Infinity;
  private inFlight: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private stopped = false;

  /**
   * @param options validated here (see {@link MemcachedDiscoveryOptions}).
   * @param apply receives the node addresses (`ip:port`, else `host:port`) of each newer
   *   configuration; when it throws, the configuration is not applied (and is retried next poll).
   * @param path where the options sit, for messages, e.g. `tiers[1].discovery`.
   * @throws InvalidOptionError on an invalid endpoint, interval or flag, naming it under `path`.
   */
  constructor(
    options: MemcachedDiscoveryOptions,
    private readonly apply: (servers: string[], version: number) => void,
    path = 'discovery',
  ) {
    const resolved = resolveDiscoveryOptions(options, path);
    this.endpoint = resolved.endpoint.address;
    this.intervalMs = resolved.intervalMs;
    this.timeoutMs = resolved.timeoutMs;
    this.ignoreErrors = resolved.ignoreErrors;
  }

  /**
   * First discovery, then polling. Resolves once a node list was applied (the discovered one, or
   * the endpoint alone with `ignoreErrors`).
   *
   * @throws DiscoveryError naming the endpoint when the first discovery fails without
   *   `ignoreErrors` (polling does not start then; call `start()` again to retry).
   */
  async start(): Promise<void> {
    this.assertRunning();
    try {
      const config = await this.ask();
      this.offer(
        config.version,
        config.nodes.map((n) => n.address),
        true,
      );
    } catch (error) {
      if (this.stopped) throw error;
      if (!this.ignoreErrors) {
        throw error instanceof DiscoveryError
          ? new DiscoveryError(
              `${error.message} (set discovery.ignoreErrors to use the endpoint as the only node)`,
              error.endpoint,
              error.notElastiCache,
              { cause: error.cause },
            )
          : error;
      }
      this.offer(-1, [this.endpoint], true);
    }
    this.schedule(this.intervalMs);
  }

  /** Polls now (or joins the poll in flight); never rejects. */
  refresh(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.inFlight ??= this.poll().finally(() => {
      this.inFlight = undefined;
      if (!this.stopped) this.schedule(this.intervalMs);
    });
    return this.inFlight;
  }

  /**
   * Asks for a poll soon, e.g. after a connection error: at once unless a poll is in flight or
   * one started less than a second (or `intervalMs`) ago, then as soon as that gap has passed.
   */
  requestRefresh(): void {
    if (this.stopped || this.inFlight || this.version === undefined) return;
    const gap = Math.min(ERROR_POLL_GAP_MS, this.intervalMs);
    const delay = Math.max(0, this.lastPollAt + gap - Date.now());
    if (Date.now() + delay < this.timerDueAt) this.schedule(delay);
  }

  /** Stops polling and aborts a question in flight; resolves when nothing is left running. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.abort.abort();
    await this.inFlight;
  }

  private async poll(): Promise<void> {
    try {
      const config = await this.ask();
      this.lastError = undefined;
      this.offer(
        config.version,
        config.nodes.map((n) => n.address),
        false,
      );
    } catch (error) {
      this.lastError = asError(error, this.endpoint);
    }
  }

  private ask(): Promise<ClusterConfig> {
    this.polls++;
    this.lastPollAt = Date.now();
    return fetchClusterConfig(this.endpoint, {
      timeoutMs: this.timeoutMs,
      signal: this.abort.signal,
    });
  }

  private offer(version: number, servers: string[], first: boolean): void {
    if (this.stopped) return;
    if (!first && this.version !== undefined && version <= this.version) return;
    try {
      this.apply(servers, version);
    } catch (error) {
      if (first) throw error;
      this.lastError = asError(error, this.endpoint);
      return;
    }
    this.version = version;
  }

  private schedule(delay: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timerDueAt = Date.now() + delay;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerDueAt = Infinity;
      void this.refresh();
    }, delay);
    this.timer.unref();
  }

  private assertRunning(): void {
    if (this.stopped)
      throw new TieredCacheError('E_CLOSED', `ElastiCache discovery at ${this.endpoint}: stopped`);
  }
}

/** `error` itself when it is an `Error`, else a {@link DiscoveryError} carrying it. */
function asError(error: unknown, endpoint: string): Error {
  if (error instanceof Error) return error;
  const message = `ElastiCache discovery at ${endpoint}: ${messageOf(error)}`;
  return new DiscoveryError(message, endpoint, false, { cause: error });
}
