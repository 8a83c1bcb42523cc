import { Redis, type RedisOptions } from 'ioredis';
import { RedisNode } from '../harness/redis';
import { freeze } from './memcached';

/**
 * What a Redis spec opens, closed by one `afterAll(() => bed.close())`: Redis processes of the
 * test's own (so it can SIGKILL or SIGSTOP them without hurting other tests; killed on close) and
 * ioredis clients (disconnected on close, before the processes are killed).
 */
export class RedisTestbed {
  private readonly nodes: RedisNode[] = [];
  private readonly clients: Redis[] = [];

  /** Errors the testbed's clients emitted, so none goes to the console as "unhandled". */
  readonly clientErrors: Error[] = [];

  /** Starts a Redis of this test's own on a free loopback port. */
  async node(): Promise<RedisNode> {
    const node = await RedisNode.start();
    this.nodes.push(node);
    return node;
  }

  /** An ioredis client to `url` (e.g. `node.url`), disconnected by `close()`. */
  client(url: string, options: RedisOptions = {}): Redis {
    const client = new Redis(url, options);
    client.on('error', (err: Error) => this.clientErrors.push(err));
    this.clients.push(client);
    return client;
  }

  /** Disconnects every client, then kills every node; can be called again. */
  async close(): Promise<void> {
    const clients = this.clients.splice(0);
    const nodes = this.nodes.splice(0);
    await Promise.all(clients.map(disconnect));
    await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
  }
}

/**
 * Disconnects `client` and waits until its socket is closed. ioredis ends a socket it cannot close
 * cleanly (e.g. to a frozen server) after its `disconnectTimeout` (2 s by default).
 */
async function disconnect(client: Redis): Promise<void> {
  // 'end': closed for good. 'reconnecting': the socket is already closed; disconnect() only clears
  // the reconnect timer, and emits no 'end'. 'wait': never connected; 'end' comes synchronously.
  if (client.status === 'end') return;
  const wasReconnecting = client.status === 'reconnecting';
  const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
  client.disconnect();
  if (!wasReconnecting) await ended;
}

/** The pid of a running harness Redis. */
export function redisPid(node: RedisNode): number {
  const pid = node.pid;
  if (!pid) throw new Error(`no pid for redis ${node.address}`);
  return pid;
}

/** Crashes the node (SIGKILL) and waits until the process has exited: its port refuses connections. */
export async function killRedis(node: RedisNode): Promise<void> {
  await node.stop('SIGKILL');
}

/**
 * Starts the node's process again on the same port and waits until it accepts connections. It
 * comes back empty (nothing is persisted).
 */
export async function restartRedis(node: RedisNode): Promise<void> {
  if (node.running) throw new Error(`redis ${node.address} is still running`);
  await node.start();
}

/**
 * Hangs the node (SIGSTOP) and waits until every thread of it is stopped: connections are still
 * accepted by the kernel, but nothing is answered until `thawRedis`.
 */
export async function freezeRedis(node: RedisNode): Promise<void> {
  await freeze(redisPid(node));
}

/** Resumes a frozen node (SIGCONT); it answers what it was sent while frozen. */
export function thawRedis(node: RedisNode): void {
  process.kill(redisPid(node), 'SIGCONT');
}
