import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { BentoCache, bentostore } from 'bentocache';
import { memoryDriver } from 'bentocache/drivers/memory';
import { redisBusDriver } from 'bentocache/drivers/redis';
import { TieredStore, type BusEvent, type TierOptions } from '../lib';
import { PRODUCT } from './fixtures';
import { concurrently } from './measure';

/**
 * One process of the bus benchmark (see `bus.bench.ts`), configured by BUS_WORKER (JSON):
 * - `ours`: a store of `tiers` with the invalidation bus on `redisUrl`;
 * - `bento`: a BentoCache of a memory L1 and its Redis bus on the same Redis;
 * both answering `send` (paced writes and deletes, as the sending instance) and recording what
 * they receive (as the receiving instance);
 * - `ops`: a store of `tiers`, with the bus on `redisUrl` or without one, answering `run` (timed
 * sets or deletes) like a contender of `isolated.ts`.
 * Commands carry an `id`; the answer carries it back. Unasked, a receiver reports each probe key
 * it receives (`{ type: 'probe' }`), so the parent knows the subscription works.
 */
export type BusWorkerConfig =
  | { role: 'ours'; redisUrl: string; namespace: string; tiers: TierOptions[] }
  | { role: 'bento'; redisUrl: string; name: string }
  | { role: 'ops'; redisUrl?: string; namespace: string; tiers: TierOptions[]; keys: string[] };

export type BusWorkerCommand =
  | { cmd: 'send'; keys: string[]; intervalMs: number }
  | { cmd: 'collect'; keys: string[] }
  | { cmd: 'run'; ops: number; op: 'set' | 'delete'; concurrency: number }
  | { cmd: 'stats' }
  | { cmd: 'close' };

/** What a receiver saw of `keys`, in their order (`null`: not received). */
export interface Collected {
  /** When the receiving hook ran, µs on the machine's monotonic clock. */
  at: Array<number | null>;
  /** `ours`: receive time − the message's `at` (the sender's wall clock at publish, sub-ms), ms. */
  sentAtLagMs: Array<number | null>;
  /** Bus events other than `invalidated` seen so far (gap, down, up). */
  otherEvents: string[];
}

/**
 * Microseconds on CLOCK_MONOTONIC (`process.hrtime`), one clock for every process of the machine:
 * a sender's and a receiver's readings can be subtracted.
 */
export const monotonicUs = (): number => Number(process.hrtime.bigint()) / 1000;

interface Instance {
  /** Writes (even `i`) or deletes (odd `i`) `key`, resolving when the call does. */
  op(key: string, i: number): Promise<unknown>;
  close(): Promise<void>;
  stats(): unknown;
}

const arrivals = new Map<string, number>();
const sentAtLag = new Map<string, number>();
const otherEvents: string[] = [];

function arrived(keys: readonly string[], now: number, sentAt?: number): void {
  for (const k of keys) {
    if (arrivals.has(k)) continue;
    arrivals.set(k, now);
    if (sentAt !== undefined) sentAtLag.set(k, performance.timeOrigin + performance.now() - sentAt);
    if (k.startsWith('probe:')) process.send!({ type: 'probe', key: k });
  }
}

async function ours(c: Extract<BusWorkerConfig, { role: 'ours' }>): Promise<Instance> {
  const store = new TieredStore({
    namespace: c.namespace,
    tiers: c.tiers,
    bus: { type: 'redis', url: c.redisUrl },
  });
  store.on('error', () => undefined);
  // The receiving hook: the store's `invalidated` event, emitted once the message's keys were
  // handed to the local tiers' removal.
  store.on('bus', (e: BusEvent) => {
    const now = monotonicUs();
    if (e.type === 'invalidated') arrived(e.invalidation!.keys, now, e.invalidation!.at);
    else otherEvents.push(`${e.type}: ${e.message}`);
  });
  await store.connect({ failFast: true });
  await until(() => store.busStats()?.up === true, 10_000, 'our bus did not come up');
  return {
    op: (key, i) => (i % 2 === 0 ? store.set(key, PRODUCT, 60_000) : store.delete(key)),
    close: () => store.disconnect(),
    stats: () => store.busStats(),
  };
}

async function bento(c: Extract<BusWorkerConfig, { role: 'bento' }>): Promise<Instance> {
  const url = new URL(c.redisUrl);
  const cache = new BentoCache({
    default: 'cache',
    stores: {
      cache: bentostore()
        .useL1Layer(memoryDriver({ maxSize: '100mb' }))
        .useBus(
          redisBusDriver({ connection: { host: url.hostname, port: Number(url.port || 6379) } }),
        ),
    },
    prefix: c.name,
  });
  // The receiving hook: BentoCache's `bus:message:received` event, emitted by its bus handler
  // right before it deletes (or logically expires) the keys in its L1.
  cache.on('bus:message:received', (data) => arrived(data.message.keys, monotonicUs()));
  // BentoCache builds a store, and subscribes its bus, on the store's first use.
  await cache.get({ key: 'first-use' });
  return {
    op: (key, i) =>
      i % 2 === 0 ? cache.set({ key, value: PRODUCT, ttl: '1m' }) : cache.delete({ key }),
    close: () => cache.disconnect(),
    stats: () => undefined,
  };
}

async function ops(c: Extract<BusWorkerConfig, { role: 'ops' }>) {
  const store = new TieredStore({
    namespace: c.namespace,
    tiers: c.tiers,
    ...(c.redisUrl !== undefined && { bus: { type: 'redis' as const, url: c.redisUrl } }),
  });
  store.on('error', () => undefined);
  store.on('bus', (e: BusEvent) => {
    if (e.type !== 'invalidated') otherEvents.push(`${e.type}: ${e.message}`);
  });
  await store.connect({ failFast: true });
  if (c.redisUrl !== undefined)
    await until(() => store.busStats()?.up === true, 10_000, 'the bus did not come up');
  const { keys } = c;
  let cpuUs = 0;
  let opsDone = 0;
  return {
    run: async (m: Extract<BusWorkerCommand, { cmd: 'run' }>) => {
      const cpu = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      await concurrently(m.ops, m.concurrency, (i) =>
        m.op === 'set'
          ? store.set(keys[i % keys.length], PRODUCT)
          : store.delete(keys[i % keys.length]),
      );
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const used = process.cpuUsage(cpu);
      cpuUs += used.user + used.system;
      opsDone += m.ops;
      return seconds;
    },
    /** Operations and CPU per operation (µs) since the last call; the bus's counters and events. */
    stats: () => {
      const out = {
        ops: opsDone,
        cpuUsPerOp: cpuUs / opsDone,
        bus: store.busStats(),
        otherEvents: otherEvents.splice(0),
      };
      cpuUs = 0;
      opsDone = 0;
      return out;
    },
    close: () => store.disconnect(),
  };
}

/**
 * `keys[i]` written (even `i`) or deleted (odd `i`) one at a time, about one every `intervalMs`;
 * returns how long each call took (µs) and when it started (µs, {@link monotonicUs}). Each call
 * starts in a turn of the event loop of its own, so no two land in one bus message.
 */
async function send(
  instance: Instance,
  keys: string[],
  intervalMs: number,
): Promise<{ starts: number[]; callUs: number[] }> {
  const starts: number[] = [];
  const callUs: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < keys.length; i++) {
    const wait = t0 + i * intervalMs - performance.now();
    if (wait >= 1) await sleep(Math.floor(wait));
    else await nextTurn();
    const start = monotonicUs();
    starts.push(start);
    await instance.op(keys[i], i);
    callUs.push(monotonicUs() - start);
  }
  return { starts, callUs };
}

function collect(keys: string[]): Collected {
  const out: Collected = {
    at: keys.map((k) => arrivals.get(k) ?? null),
    sentAtLagMs: keys.map((k) => sentAtLag.get(k) ?? null),
    otherEvents: [...otherEvents],
  };
  return out;
}

async function until(ok: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(what);
    await sleep(10);
  }
}

async function main(): Promise<void> {
  const config = JSON.parse(process.env.BUS_WORKER ?? '{}') as BusWorkerConfig;
  const answer = (id: number, m: object) => process.send!({ id, ...m });
  if (config.role === 'ops') {
    const body = await ops(config);
    process.on('message', (m: BusWorkerCommand & { id: number }) => {
      if (m.cmd === 'close') {
        void body.close().finally(() => process.disconnect());
        return;
      }
      const work = m.cmd === 'run' ? body.run(m).then((seconds) => ({ seconds })) : body.stats();
      Promise.resolve(work).then(
        (r) => answer(m.id, { type: 'done', ...r }),
        (err: unknown) => answer(m.id, { type: 'error', message: String(err) }),
      );
    });
  } else {
    const instance = config.role === 'ours' ? await ours(config) : await bento(config);
    process.on('message', (m: BusWorkerCommand & { id: number }) => {
      if (m.cmd === 'close') {
        void instance.close().finally(() => process.disconnect());
        return;
      }
      const work =
        m.cmd === 'send'
          ? send(instance, m.keys, m.intervalMs)
          : m.cmd === 'collect'
            ? Promise.resolve(collect(m.keys))
            : Promise.resolve({ bus: instance.stats(), otherEvents: otherEvents.splice(0) });
      work.then(
        (r) => answer(m.id, { type: 'done', ...r }),
        (err: unknown) => answer(m.id, { type: 'error', message: String(err) }),
      );
    });
  }
  process.send!({ type: 'ready' });
}

main().catch((err: unknown) => {
  process.send!({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  process.disconnect();
});
