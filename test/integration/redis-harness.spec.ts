import { connect } from 'node:net';
import { testServers, uniqueName } from '../harness/env';
import type { RedisNode } from '../harness/redis';
import { eventually } from '../support/eventually';
import { OpenResources } from '../support/open-resources';
import {
  freezeRedis,
  killRedis,
  redisPid,
  RedisTestbed,
  restartRedis,
  thawRedis,
} from '../support/redis';

const bed = new RedisTestbed();
let resources: OpenResources | undefined;
beforeAll(() => {
  resources = OpenResources.watch({ stacks: true });
});
afterAll(async () => {
  resources?.stop();
  await bed.close();
});

const TIMEOUT = 'timeout' as const;

/** What `promise` settles to within `ms`, or TIMEOUT; the timer is cleared either way. */
async function within<T>(promise: Promise<T>, ms: number): Promise<{ value: T } | typeof TIMEOUT> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMEOUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMEOUT), ms);
  });
  try {
    return await Promise.race([promise.then((value) => ({ value })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** How a raw TCP connection to the node ends: 'connected', or the error code (e.g. ECONNREFUSED). */
function tcpConnect(node: RedisNode): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(node.port, node.host);
    socket.setTimeout(5000, () => {
      socket.destroy();
      resolve('no answer within 5 s');
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      socket.destroy();
      resolve(err.code ?? err.message);
    });
  });
}

/** A client that gives up at the first failed connection instead of retrying. */
const noRetry = { retryStrategy: () => null, maxRetriesPerRequest: 0 };

describe('test harness: the shared Redis (REDIS_URL)', () => {
  it('stores and reads back a value', async () => {
    const { url } = testServers().redis;
    expect(url).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
    const client = bed.client(url);
    const key = uniqueName('redis_harness');
    expect(await client.set(key, 'v1', 'PX', 60_000)).toBe('OK');
    expect(await client.get(key)).toBe('v1');
    expect(await client.del(key)).toBe(1);
    expect(await client.get(key)).toBeNull();
  });

  it('delivers a PUBLISH to a SUBSCRIBE on another connection', async () => {
    const { url } = testServers().redis;
    const subscriber = bed.client(url);
    const publisher = bed.client(url);
    const channel = uniqueName('redis_harness_channel');
    const received = new Promise<[string, string]>((resolve) =>
      subscriber.on('message', (ch: string, message: string) => resolve([ch, message])),
    );
    // Resolves once Redis has confirmed the subscription.
    expect(await subscriber.subscribe(channel)).toBe(1);
    expect(await publisher.publish(channel, 'hello')).toBe(1);
    expect(await within(received, 10_000)).toEqual({ value: [channel, 'hello'] });
  });
});

describe("test harness: RedisTestbed (Redis processes of a test's own)", () => {
  it('a SIGKILLed node refuses connections; restarted on the same port, it accepts them again', async () => {
    const node = await bed.node();
    const port = node.port;
    const firstPid = redisPid(node);
    expect(await bed.client(node.url, noRetry).ping()).toBe('PONG');

    await killRedis(node);
    expect(node.running).toBe(false);
    expect(await tcpConnect(node)).toBe('ECONNREFUSED');
    const refused = bed.client(node.url, { ...noRetry, lazyConnect: true });
    const errors: NodeJS.ErrnoException[] = [];
    refused.on('error', (err: NodeJS.ErrnoException) => errors.push(err));
    // ioredis rejects connect() with its own "closed" error and emits the socket's as 'error'.
    await expect(refused.connect()).rejects.toThrow('Connection is closed');
    expect(errors.map((e) => e.code)).toEqual(['ECONNREFUSED']);

    await restartRedis(node);
    expect(node.port).toBe(port);
    expect(node.url).toBe(`redis://127.0.0.1:${port}`);
    expect(redisPid(node)).not.toBe(firstPid);
    expect(await tcpConnect(node)).toBe('connected');
    expect(await bed.client(node.url, noRetry).ping()).toBe('PONG');
  });

  it('a frozen node answers no PING within 500 ms, and answers it after SIGCONT', async () => {
    const node = await bed.node();
    const client = bed.client(node.url, noRetry);
    expect(await client.ping()).toBe('PONG');

    await freezeRedis(node);
    const reply = client.ping();
    expect(await within(reply, 500)).toBe(TIMEOUT);

    thawRedis(node);
    expect(await within(reply, 10_000)).toEqual({ value: 'PONG' });
    expect(await client.ping()).toBe('PONG');
  });

  it('closes every connection and process it opened', async () => {
    const node = await bed.node();
    expect(await bed.client(node.url, noRetry).ping()).toBe('PONG');

    await bed.close();
    expect(node.running).toBe(false);
    expect(await tcpConnect(node)).toBe('ECONNREFUSED');
    const watch = resources!;
    await eventually(() => watch.left().length === 0, 5000);
    expect(watch.left()).toEqual([]);
  });
});
