import { setTimeout as sleep } from 'node:timers/promises';
import { eventually } from '../support/eventually';
import { createTieredStore, type InvalidationTransport, type TransportHandlers } from '../../lib';
import { busConfig } from '../../lib/bus/bus.options';
import { InvalidationBus, type BusHandlers } from '../../lib/bus/invalidation-bus';
import { decodeMessage, encodeMessage } from '../../lib/bus/invalidation-message';

/**
 * The bus's own logic (numbering, batching, gaps, the bounded queue, option checks) over an
 * in-process channel: a transport in its own right, not a stand-in for Redis (the Redis transport
 * is tested against a real Redis in test/integration/bus*.spec.ts).
 */
class InProcessChannel {
  readonly subscribers = new Map<string, TransportHandlers[]>();
  /** Publishes held (not delivered) until released, to model a hung broker. */
  hold = false;
  /** Publishes rejected, to model a broker that refuses them. */
  failing = false;
  readonly held: Array<() => void> = [];

  transport(): InvalidationTransport {
    return {
      publish: (channel, payload) =>
        new Promise<void>((resolve, reject) => {
          if (this.failing) return reject(new Error('refused'));
          const deliver = () => {
            for (const h of this.subscribers.get(channel) ?? []) h.message(payload);
            resolve();
          };
          if (this.hold) this.held.push(deliver);
          else queueMicrotask(deliver);
        }),
      subscribe: async (channel, handlers) => {
        this.subscribers.set(channel, [...(this.subscribers.get(channel) ?? []), handlers]);
        handlers.state(true);
      },
      close: async () => undefined,
    };
  }
}

function recorder(): BusHandlers & {
  keys: string[][];
  flushes: string[];
  states: Array<[boolean, string]>;
} {
  const r = {
    keys: [] as string[][],
    flushes: [] as string[],
    states: [] as Array<[boolean, string]>,
    invalidate: (m: { keys: string[] }) => void r.keys.push(m.keys),
    flush: (reason: string) => void r.flushes.push(reason),
    state: (up: boolean, reason: string) => void r.states.push([up, reason]),
  };
  return r;
}

async function pair(channel = new InProcessChannel(), maxQueue = 10_000) {
  const a = recorder();
  const b = recorder();
  const busA = new InvalidationBus({
    transport: async () => channel.transport(),
    channel: 'c',
    maxQueue,
    handlers: a,
  });
  const busB = new InvalidationBus({
    transport: async () => channel.transport(),
    channel: 'c',
    maxQueue,
    handlers: b,
  });
  await busA.start();
  await busB.start();
  return { channel, a, b, busA, busB };
}

const tick = () => sleep(1);

/**
 * Waits until `bus` has handed what it was given to the transport and (`answered`) the transport
 * has answered: no fixed pause, publishes start up to about 1 ms apart.
 */
async function sent(bus: InvalidationBus, answered = true): Promise<void> {
  const done = () => bus.stats().pending === 0 && (!answered || bus.stats().inFlight === 0);
  expect(await eventually(done, 2000)).toBe(true);
}

describe('InvalidationBus', () => {
  it("sends one tick's keys as one message, ignores its own, numbers them in order", async () => {
    const { a, b, busA, busB } = await pair();
    busA.keysChanged(['k1', 'k2']);
    busA.keysChanged(['k2', 'k3']);
    await sent(busA);
    busA.keysChanged(['k4']);
    await sent(busA);
    expect(b.keys).toEqual([['k1', 'k2', 'k3'], ['k4']]);
    expect(a.keys).toEqual([]); // its own messages
    expect(busA.stats()).toMatchObject({ published: 2, publishFailed: 0, dropped: 0 });
    expect(busB.stats()).toMatchObject({ received: 2, gaps: 0, up: true });
    expect(b.flushes).toEqual([]);
  });

  it('keys changed before the transport is ready are published once it is', async () => {
    const channel = new InProcessChannel();
    const b = recorder();
    const busB = new InvalidationBus({
      transport: async () => channel.transport(),
      channel: 'c',
      maxQueue: 10,
      handlers: b,
    });
    await busB.start();
    let ready: (t: InvalidationTransport) => void = () => undefined;
    const busA = new InvalidationBus({
      transport: () => new Promise<InvalidationTransport>((resolve) => (ready = resolve)),
      channel: 'c',
      maxQueue: 10,
      handlers: recorder(),
    });
    busA.keysChanged(['early']); // before start(), before the transport exists
    await sleep(5);
    expect(b.keys).toEqual([]);
    ready(channel.transport());
    await sent(busA);
    expect(b.keys).toEqual([['early']]);
  });

  it("a sender's first messages lost: a gap when the receiver was listening before it began, none otherwise", async () => {
    const channel = new InProcessChannel();
    const bus = (handlers: BusHandlers) =>
      new InvalidationBus({
        transport: async () => channel.transport(),
        channel: 'c',
        maxQueue: 10,
        handlers,
      });
    // An old sender, already numbering past 1 when the receiver starts: not a gap.
    const old = bus(recorder());
    channel.failing = true;
    old.keysChanged(['o1']);
    await sent(old);
    channel.failing = false;
    const b = recorder();
    const busB = bus(b);
    await busB.start();
    old.keysChanged(['o2']);
    await sent(old);
    expect(b.keys).toEqual([['o2']]);
    expect(b.flushes).toEqual([]);
    // A sender made well after the receiver was listening (past the 1 s allowed for clock skew),
    // whose first publish failed: its number 2 is a gap.
    await sleep(1100);
    const late = bus(recorder());
    channel.failing = true;
    late.keysChanged(['l1']);
    await sent(late);
    channel.failing = false;
    late.keysChanged(['l2']);
    await sent(late);
    expect(b.keys.at(-1)).toEqual(['l2']);
    expect(b.flushes).toEqual([expect.stringMatching(/missed 1 invalidation message/)]);
    expect(busB.stats().gaps).toBe(1);
  });

  it('splits a tick of more than 1,000 keys into several messages', async () => {
    const { b, busA } = await pair();
    busA.keysChanged(Array.from({ length: 2500 }, (_, i) => `k${i}`));
    await sent(busA);
    expect(b.keys.map((k) => k.length)).toEqual([1000, 1000, 500]);
    expect(busA.stats().published).toBe(3);
  });

  it('keys that come while a publish is in flight go out together next; past maxQueue waiting they are dropped, their number spent', async () => {
    const { channel, b, busA, busB } = await pair(new InProcessChannel(), 2);
    const release = async () => {
      channel.hold = false;
      for (const deliver of channel.held.splice(0)) deliver();
      await sent(busA);
    };
    channel.hold = true;
    busA.keysChanged(['k0']);
    await sent(busA, false); // published, not answered yet
    busA.keysChanged(['k1']);
    await tick();
    busA.keysChanged(['k2']);
    await tick();
    expect(busA.stats()).toMatchObject({ inFlight: 1, pending: 2, dropped: 0, published: 0 });
    await release();
    expect(b.keys).toEqual([['k0'], ['k1', 'k2']]); // one message for both
    expect(busA.stats()).toMatchObject({ inFlight: 0, pending: 0, published: 2 });

    channel.hold = true;
    busA.keysChanged(['k3']);
    await sent(busA, false);
    busA.keysChanged(['k4', 'k5', 'k6']); // 3 waiting > maxQueue 2: dropped
    busA.keysChanged(['k7']);
    expect(busA.stats()).toMatchObject({ inFlight: 1, pending: 1, dropped: 3 });
    expect(b.flushes).toEqual([]);
    await release();
    expect(b.keys.slice(2)).toEqual([['k3'], ['k7']]);
    expect(b.flushes).toEqual([
      expect.stringMatching(/missed 1 invalidation message from instance/),
    ]);
    expect(busB.stats().gaps).toBe(1);
  });

  it('ignores payloads that are not its messages, and counts them', async () => {
    const { channel, b, busB } = await pair();
    for (const payload of [
      '',
      'null',
      '{"v":2}',
      '{"v":1,"f":"x","s":0,"k":[]}',
      '{"v":1,"f":"x","s":1,"k":[1]}',
    ])
      for (const h of channel.subscribers.get('c')!) h.message(Buffer.from(payload));
    expect(b.keys).toEqual([]);
    expect(busB.stats().invalid).toBe(5 * 1);
  });

  it("a subscription going down or coming back is reported; senders' numbers are kept", async () => {
    const channel = new InProcessChannel();
    let handlersB: TransportHandlers | undefined;
    const b = recorder();
    const transportB = channel.transport();
    const busB = new InvalidationBus({
      transport: async () => ({
        ...transportB,
        subscribe: (c: string, h: TransportHandlers) => {
          handlersB = h;
          return transportB.subscribe(c, h);
        },
      }),
      channel: 'c',
      maxQueue: 10,
      handlers: b,
    });
    await busB.start();
    const busA = new InvalidationBus({
      transport: async () => channel.transport(),
      channel: 'c',
      maxQueue: 10,
      handlers: recorder(),
    });
    await busA.start();
    busA.keysChanged(['k1']);
    await sent(busA);
    handlersB!.state(false, 'connection lost');
    handlersB!.state(false, 'still lost'); // no change, not reported again
    busA.keysChanged(['k2']); // sent while b is "down" (delivered here, but b may not trust it)
    await sent(busA);
    busA.keysChanged(['k3']);
    await sent(busA);
    handlersB!.state(true, 'back');
    busA.keysChanged(['k4']);
    await sent(busA);
    expect(b.states).toEqual([
      [true, 'subscribed'],
      [false, 'connection lost'],
      [true, 'back'],
    ]);
    expect(busB.stats().gaps).toBe(0); // every message arrived, in order
    // A's next publish fails (after b came back): b notices at A's following message.
    channel.failing = true;
    busA.keysChanged(['k5']);
    await sent(busA);
    channel.failing = false;
    expect(busA.stats().publishFailed).toBe(1);
    busA.keysChanged(['k6']);
    await sent(busA);
    expect(b.keys.at(-1)).toEqual(['k6']);
    expect(b.flushes).toEqual([expect.stringMatching(/missed 1 invalidation message/)]);
  });

  it('carries a clear (generation) and tags', () => {
    const m = {
      from: 'i',
      seq: 3,
      at: 5,
      born: 4,
      keys: ['a'],
      generation: 7,
      tags: [
        { tag: 't', mode: 'delete' as const, at: 4, by: 1 },
        { tag: 'u', mode: 'expire' as const, at: 5 + 1 / 1024, by: 4_294_967_295 },
      ],
    };
    expect(decodeMessage(encodeMessage(m))).toEqual(m);
    expect(decodeMessage(encodeMessage({ ...m, generation: undefined, tags: undefined }))).toEqual({
      ...m,
      generation: undefined,
      tags: undefined,
    });
  });
});

describe('bus options', () => {
  const transport = new InProcessChannel().transport();
  it.each([
    [{ type: 'redis' }, 'bus: a redis bus needs exactly one of url and client'],
    [
      { type: 'redis', url: 'localhost:6379' },
      'bus.url: must be a redis:// or rediss:// URL, got string',
    ],
    [
      { type: 'redis', url: 'redis://h:1', client: {} },
      'bus: a redis bus needs exactly one of url and client',
    ],
    [{ type: 'redis', client: {} }, 'bus.client: must be an ioredis client, got object'],
    [
      { type: 'kafka', url: 'x' },
      'bus.type: must be "redis" (with url or client), or give a transport; got "kafka"',
    ],
    [
      { url: 'redis://h:1' },
      'bus.type: must be "redis" (with url or client), or give a transport; got none',
    ],
    [
      { transport: {} },
      'bus.transport: must implement InvalidationTransport; object lacks publish, subscribe, close',
    ],
    [
      { transport, type: 'redis' },
      'bus: give either transport, or type: "redis" with url or client, not both',
    ],
    [{ transport, degradedTtl: 0 }, 'bus.degradedTtl: 0 is not a number of milliseconds > 0'],
    [{ transport, maxQueue: 0.5 }, 'bus.maxQueue: 0.5 is not an integer >= 1'],
    [
      { transport, degradedTTL: 5 },
      'bus.degradedTTL: unknown option (did you mean "degradedTtl"?)',
    ],
    ['redis://h:1', 'bus: must be an object, got string'],
  ])('%j: %s', (options, message) => {
    expect(() => busConfig(options as never)).toThrow(message);
    // The same through the store, before anything is connected.
    expect(() => createTieredStore({ bus: options as never })).toThrow(message);
  });

  it('defaults: degradedTtl 1000 ms, maxQueue 10,000 keys, timeout 1000 ms', () => {
    expect(busConfig({ transport })).toMatchObject({
      degradedTtl: 1000,
      maxQueue: 10_000,
      timeoutMs: 1000,
    });
    expect(busConfig(undefined)).toBeUndefined();
  });
});
