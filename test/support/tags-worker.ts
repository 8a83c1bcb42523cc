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
import { CACHE_MANAGER } from '@nestjs/cache-manager';
import { Controller, Get, type INestApplication, Injectable, Param } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { Cache } from 'cache-manager';
import type Keyv from 'keyv';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Cached,
  TieredCache,
  TieredCacheModule,
  TieredStore,
  createTieredKeyv,
  createTieredStore,
  type BusEvent,
  type CacheableRequest,
} from '../../lib';
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

/** What a `@Cached` read computes: never stored (`condition`), version -1. */
const computed = (key: string): TaggedValue => ({ key, v: -1, by: process.pid });

@Injectable()
class Catalog {
  @Cached({ key: (key: string) => key, condition: () => false })
  async find(key: string): Promise<TaggedValue> {
    return computed(key);
  }
}

@Controller('tagged')
class TaggedController {
  @Get(':key')
  @Cached({ key: (request: CacheableRequest) => request.params.key, condition: () => false })
  find(@Param('key') key: string): TaggedValue {
    return computed(key);
  }
}

/**
 * The app's other read paths over one session's store: a Nest app (TieredCacheModule with the
 * store given) with a `@Cached` method and handler, its `CACHE_MANAGER`, and Keyv.
 */
class ReadPaths {
  private constructor(
    private readonly app: INestApplication,
    private readonly url: string,
    readonly catalog: Catalog,
    readonly cacheManager: Cache,
    readonly keyv: Keyv,
  ) {}

  static async open(store: TieredStore, clock: ManualClock | undefined): Promise<ReadPaths> {
    const moduleRef = await Test.createTestingModule({
      imports: [TieredCacheModule.forRoot({ clock, logErrors: false })],
      controllers: [TaggedController],
      providers: [Catalog],
    })
      .overrideProvider(TieredStore)
      .useValue(store)
      .compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.listen(0, '127.0.0.1');
    return new ReadPaths(
      app,
      await app.getUrl(),
      app.get(Catalog),
      app.get<Cache>(CACHE_MANAGER),
      createTieredKeyv(store),
    );
  }

  async handler(key: string): Promise<TaggedValue> {
    const res = await fetch(`${this.url}/tagged/${encodeURIComponent(key)}`);
    if (res.status !== 200) throw new Error(`GET /tagged/${key}: ${res.status}`);
    return (await res.json()) as TaggedValue;
  }

  /** Closes the HTTP server only: the session closes its store. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.app.getHttpServer().close(() => resolve()));
  }
}

/** One cache (`open` to `close`) and what it did. */
class Session {
  paths: ReadPaths | undefined;
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

  async read(keys: string[], cached: boolean): Promise<ReadResult> {
    const paths = (this.paths ??= await ReadPaths.open(this.store, this.clock));
    const out: ReadResult = {
      get: [],
      getMany: (await this.store.getMany<TaggedValue>(keys)).map((v) => v ?? null),
      mget: (await this.cache.mget<TaggedValue>(keys)).map((v) => v ?? null),
      has: [],
      keyv: [],
      cacheManager: [],
    };
    const cachedMethod: TaggedValue[] = [];
    const cachedHandler: TaggedValue[] = [];
    for (const key of keys) {
      out.get.push((await this.store.get<TaggedValue>(key)) ?? null);
      out.has.push(await this.store.has(key));
      out.keyv.push(((await paths.keyv.get(key)) as TaggedValue | undefined) ?? null);
      out.cacheManager.push((await paths.cacheManager.get<TaggedValue>(key)) ?? null);
      if (!cached) continue;
      cachedMethod.push(await paths.catalog.find(key));
      cachedHandler.push(await paths.handler(key));
    }
    return cached ? { ...out, cachedMethod, cachedHandler } : out;
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
    await this.paths?.close();
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
      return current().read(cmd.keys, cmd.cached === true);
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
