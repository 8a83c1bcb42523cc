/**
 * A Node process holding one `TieredCache` at a time (`open` … `close`) over memory, memcached
 * and Cassandra, with or without a Redis invalidation bus, for
 * test/integration/tags-processes.spec.ts. Started by `tags-processes.ts` (`fork`, TypeScript
 * through ts-node); answers the commands listed there over IPC, each `{ id, cmd }` with one
 * `{ id, ok, result | error }`. It counts its origin calls per key, and can hold them at a gate
 * until the spec releases it (so that a refresh is still under way while every process reads).
 * It exits on `exit`, or when the spec's process goes away.
 */
import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import { TieredCache, createTieredStore, type BusEvent, type TieredStore } from '../../lib';
import { ManualClock } from './manual-clock';
import type {
  Command,
  LookupResult,
  ReadResult,
  TagsWorkerConfig,
  TaggedValue,
  WorkerState,
} from './tags-processes';
import { exitOnce } from './worker-exit';

/** One cache (`open` to `close`) and what it did. */
class Session {
  readonly store: TieredStore;
  readonly cache: TieredCache;
  readonly clock: ManualClock | undefined;
  readonly calls = new Map<string, number>();
  readonly tagMessages: WorkerState['tagMessages'] = [];
  readonly tierErrors: string[] = [];
  /** Origin calls wait for this while it is set (see `lookup` with `gate`). */
  private gate: { opened: Promise<void>; open: () => void } | undefined;

  constructor(config: TagsWorkerConfig) {
    this.clock = config.manualClock === undefined ? undefined : new ManualClock(config.manualClock);
    const store = createTieredStore({
      namespace: config.namespace,
      clock: this.clock,
      tagRefreshMs: config.tagRefreshMs,
      tiers: [
        // Copies outlive every test: what a process holds is what its reads must judge.
        { type: 'memory', ttl: 3_600_000 },
        // Generous timeouts: the machine is busy, and a tier timing out is not what is tested.
        { type: 'memcached', servers: config.memcached, timeout: 5000 },
        { type: 'cassandra', ...config.cassandra, timeout: 15_000 },
      ],
      bus:
        config.busUrl === undefined
          ? undefined
          : { type: 'redis', url: config.busUrl, timeout: 5000 },
    });
    this.store = store;
    // A lease far longer than anything here takes: one origin call per key in the cluster.
    this.cache = new TieredCache(store, { clock: this.clock, herd: { lockTimeout: 30_000 } });
    store.on('error', (err: Error) => {
      if (this.tierErrors.length < 50) this.tierErrors.push(err.message);
    });
    store.on('bus', (e: BusEvent) => {
      if (e.type === 'invalidated') this.tagMessages.push(...(e.invalidation?.tags ?? []));
    });
  }

  async lookup(cmd: Extract<Command, { op: 'lookup' }>): Promise<LookupResult> {
    if (cmd.gate === true && this.gate === undefined) {
      let open = () => {};
      const opened = new Promise<void>((resolve) => (open = resolve));
      this.gate = { opened, open };
    }
    const out: LookupResult = {};
    await Promise.all(
      cmd.keys.flatMap(({ key, tags }) => {
        out[key] = [];
        const origin = async (): Promise<TaggedValue> => {
          this.calls.set(key, (this.calls.get(key) ?? 0) + 1);
          if (this.gate !== undefined) await this.gate.opened;
          return { key, v: cmd.version, by: process.pid };
        };
        return Array.from({ length: cmd.callers }, async () => {
          const got = await this.cache.lookup(key, origin, {
            ttl: cmd.ttl,
            grace: cmd.grace,
            hardTimeout: cmd.hardTimeout,
            tags,
          });
          out[key].push({ status: got.status, value: got.value });
        });
      }),
    );
    return out;
  }

  release(): void {
    this.gate?.open();
    this.gate = undefined;
  }

  async read(keys: string[]): Promise<ReadResult> {
    const get: ReadResult['get'] = [];
    for (const key of keys) get.push((await this.store.get<TaggedValue>(key)) ?? null);
    const getMany = (await this.store.getMany<TaggedValue>(keys)).map((v) => v ?? null);
    const has: boolean[] = [];
    for (const key of keys) has.push(await this.store.has(key));
    return { get, getMany, has };
  }

  state(): WorkerState {
    return {
      pid: process.pid,
      bus: this.store.busStats(),
      tagMessages: this.tagMessages,
      tierErrors: this.tierErrors,
    };
  }

  async close(): Promise<void> {
    this.release();
    await this.store.disconnect();
  }
}

let session: Session | undefined;

function current(): Session {
  if (session === undefined) throw new Error('no cache open');
  return session;
}

async function handle(cmd: Command): Promise<unknown> {
  switch (cmd.op) {
    case 'open': {
      if (session !== undefined) throw new Error('a cache is open already');
      const s = new Session(cmd.config);
      session = s;
      await s.store.connect();
      return undefined;
    }
    case 'close': {
      const s = session;
      session = undefined;
      await s?.close();
      return undefined;
    }
    case 'state':
      return current().state();
    case 'lookup':
      return current().lookup(cmd);
    case 'release':
      current().release();
      return undefined;
    case 'read':
      return current().read(cmd.keys);
    case 'invalidate':
      await current().cache.invalidateTags(cmd.tags, { mode: cmd.mode });
      return undefined;
    case 'calls': {
      const s = current();
      const calls = Object.fromEntries(s.calls);
      if (cmd.reset === true) s.calls.clear();
      return calls;
    }
    case 'advance': {
      const clock = current().clock;
      if (clock === undefined) throw new Error('this cache runs on the system clock');
      clock.advance(cmd.ms);
      await sleep(5); // lru-cache reads the clock at most once per millisecond
      return undefined;
    }
    case 'exit':
      await shutdown(0);
      return undefined;
  }
}

/** Closes the cache (if open) and exits. */
const shutdown = exitOnce(() => session?.close());

function send(message: unknown): void {
  process.send?.(message);
}

process.on('message', (m: { id: number; cmd: Command }) => {
  handle(m.cmd).then(
    (result) => send({ id: m.id, ok: true, result }),
    (err: unknown) =>
      send({
        id: m.id,
        ok: false,
        error: err instanceof Error ? (err.stack ?? err.message) : String(err),
      }),
  );
});
// The spec went away (it crashed, or was killed): nothing is left behind.
process.on('disconnect', () => void shutdown(1));
send({ type: 'ready' });
