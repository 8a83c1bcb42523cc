import { waitAtMost } from '../clock';
import { loadPeer, TieredCacheError } from '../errors';
import type { InvalidationTransport, TransportHandlers } from './invalidation-transport';

/**
 * The parts of an ioredis client the transport uses (ioredis is an optional peer dependency:
 * these types keep it out of ours).
 */
export interface RedisClientLike {
  publish(channel: string, message: Buffer): Promise<number>;
  duplicate(options?: Record<string, unknown>): RedisClientLike;
  subscribe(channel: string): Promise<unknown>;
  ping(): Promise<string>;
  connect(): Promise<void>;
  quit(): Promise<unknown>;
  disconnect(): void;
  on(event: string, listener: (...args: never[]) => void): unknown;
  removeAllListeners(event?: string): unknown;
  readonly status: string;
}

export interface RedisTransportOptions {
  /** `redis://host:port[/db]`: the transport opens its own two connections. */
  url?: string;
  /** An ioredis client of yours: used to publish; the subscription gets a duplicate of it. */
  client?: RedisClientLike;
  /** A command's deadline, and the subscription's health check interval, ms. */
  timeoutMs: number;
}

/**
 * What the transport asks of the connections it opens: fail fast, reconnect on its own; a
 * command's deadline and the connect timeout are `timeoutMs`.
 */
const connection = (timeoutMs: number) => ({
  lazyConnect: true,
  // A publish while disconnected fails at once instead of queueing: the bus counts it, and the
  // receivers see the gap its sequence number leaves.
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResubscribe: false,
  retryStrategy: (attempt: number) => Math.min(100 * attempt, 2000),
  commandTimeout: timeoutMs,
  connectTimeout: timeoutMs,
});

/**
 * The Redis transport (ioredis): PUBLISH on one connection, SUBSCRIBE on another. The
 * subscription is watched: a closed connection, or a PING unanswered within `timeoutMs` (a hung
 * broker holds connections open), reports it down; once the connection is ready and subscribed
 * again it reports it up.
 */
export class RedisTransport implements InvalidationTransport {
  private subscriber: RedisClientLike | undefined;
  private watch: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly publisher: RedisClientLike,
    private readonly ownPublisher: boolean,
    private readonly timeoutMs: number,
  ) {}

  /** @throws TieredCacheError `E_MISSING_PEER` when ioredis is not installed and no client is given. */
  static async create(o: RedisTransportOptions): Promise<RedisTransport> {
    if (o.client !== undefined) return new RedisTransport(o.client, false, o.timeoutMs);
    const Redis = await loadIoredis();
    const client = new Redis(o.url!, connection(o.timeoutMs));
    client.on('error', () => undefined); // reported through the bus state, not as unhandled errors
    // Publishes fail at once while disconnected: the first ones must not go out before the
    // connection is up. Waits up to the timeout; past it, the client reconnects on its own.
    await waitAtMost(client.connect(), o.timeoutMs);
    return new RedisTransport(client, true, o.timeoutMs);
  }

  async publish(channel: string, payload: Buffer): Promise<void> {
    if (this.closed) throw new TieredCacheError('E_CLOSED', 'the Redis transport is closed');
    await this.publisher.publish(channel, payload);
  }

  async subscribe(channel: string, handlers: TransportHandlers): Promise<void> {
    const sub = this.publisher.duplicate({
      ...connection(this.timeoutMs),
      // SUBSCRIBE and PING wait for the connection instead of failing while it reconnects.
      enableOfflineQueue: true,
    });
    this.subscriber = sub;
    let up = false;
    const report = (now: boolean, reason: string) => {
      if (this.closed || now === up) return;
      up = now;
      handlers.state(now, reason);
    };
    sub.on('messageBuffer', ((_channel: Buffer, message: Buffer) => {
      if (!this.closed) handlers.message(message);
    }) as never);
    sub.on('error', ((err: Error) => report(false, `Redis: ${err.message}`)) as never);
    sub.on('close', () => report(false, 'Redis connection closed'));
    sub.on('ready', () => {
      sub.subscribe(channel).then(
        () => report(true, 'Redis subscription ready'),
        (err: Error) => report(false, `Redis SUBSCRIBE failed: ${err.message}`),
      );
    });
    sub.connect().catch(() => undefined); // 'ready' follows once Redis answers
    // A hung broker keeps the socket open: only an unanswered PING shows it.
    let pinging = false;
    this.watch = setInterval(() => {
      if (pinging || sub.status !== 'ready') return;
      pinging = true;
      sub
        .ping()
        .then(
          () => report(true, 'Redis answers again'),
          () => report(false, `Redis did not answer PING within ${this.timeoutMs} ms`),
        )
        .finally(() => (pinging = false));
    }, this.timeoutMs).unref();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.watch !== undefined) clearInterval(this.watch);
    const sub = this.subscriber;
    this.subscriber = undefined;
    if (sub !== undefined) {
      sub.removeAllListeners();
      sub.on('error', () => undefined);
      sub.disconnect();
    }
    if (this.ownPublisher) {
      this.publisher.removeAllListeners();
      this.publisher.on('error', () => undefined);
      this.publisher.disconnect();
    }
  }
}

type RedisConstructor = new (url: string, options: Record<string, unknown>) => RedisClientLike;

/** ioredis, loaded on first use (an optional peer dependency). */
async function loadIoredis(): Promise<RedisConstructor> {
  const mod = await loadPeer(
    () => import('ioredis') as Promise<{ default?: unknown; Redis?: unknown }>,
    "bus: { type: 'redis' } needs the ioredis package: npm install ioredis (or give a transport of your own: bus: { transport })",
  );
  return (mod.Redis ?? mod.default) as RedisConstructor;
}
