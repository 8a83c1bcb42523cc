/**
 * A Node process holding one store at a time (`open` … `close`) with tiers [memory, memcached,
 * Cassandra] and a Redis invalidation bus, for test/integration/bus-processes.spec.ts. Started by
 * `bus-processes.ts` (`fork`, TypeScript through ts-node); answers the commands listed there
 * over IPC, each `{ id, cmd }` with one `{ id, ok, result | error }`. Its memory tier is a
 * `MemoryTier` that also records what it is given (the TTL of each write, its flushes), so that
 * the spec can see the cap the bus imposes without sleeping through it. It exits on `exit`, or
 * when the spec's process goes away.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  MemoryTier,
  createTieredStore,
  type BusEvent,
  type BusStats,
  type LocalRecord,
  type TieredStore,
} from '../../lib';
import type {
  Answer,
  BusWorkerConfig,
  Command,
  MemoryClear,
  ReadLog,
  Receipts,
  RecordedEvent,
  WorkerState,
  WriteLog,
} from './bus-processes';
import { exitOnce } from './worker-exit';

/** Epoch ms, sub-ms precision, comparable between the processes of this machine. */
const now = () => performance.timeOrigin + performance.now();

/** The memory tier, recording the TTL of every write and every flush. */
class ObservedMemory extends MemoryTier {
  readonly putAt: number[] = [];
  readonly putTtl: number[] = [];
  readonly clears: MemoryClear[] = [];

  override put(key: string, record: LocalRecord, ttlMs: number): void {
    super.put(key, record, ttlMs);
    this.putAt.push(now());
    this.putTtl.push(ttlMs);
  }

  override clear(): void {
    this.clears.push({ at: now(), sizeBefore: this.size });
    super.clear();
  }
}

/** Messages numbered so far by a bus: each publish is counted once, in one of these. */
function seqOf(s: BusStats | undefined): number {
  return s === undefined ? 0 : s.published + s.publishFailed + s.dropped + s.inFlight;
}

interface ReadRun {
  stop: boolean;
  lanes: Promise<void>[];
  log: ReadLog;
}

/** One store (`open` to `close`) and what it did. */
class Session {
  readonly memory = new ObservedMemory({ type: 'memory' });
  readonly store: TieredStore;
  callerErrors = 0;
  readonly callerErrorMessages: string[] = [];
  tierErrors = 0;
  readonly tierErrorMessages: string[] = [];
  readonly events: RecordedEvent[] = [];
  readonly clears: WorkerState['clears'] = [];
  heard = 0;
  receipts: Receipts = { seq: [], from: [], recv: [], sent: [], keys: [] };
  opsDone = 0;
  readsDone = 0;
  writing: Promise<WriteLog> | undefined;
  stopWrites = false;
  reading: ReadRun | undefined;
  readonly loopDelay = monitorEventLoopDelay({ resolution: 1 });

  constructor(readonly config: BusWorkerConfig) {
    this.loopDelay.enable();
    const { memory } = this;
    const store = createTieredStore({
      namespace: config.namespace,
      tiers: [
        memory,
        // Generous timeouts: the machine is busy, and a tier timing out is not what is tested.
        { type: 'memcached', servers: config.memcached, timeout: 3000 },
        { type: 'cassandra', ...config.cassandra, timeout: 10_000 },
      ],
      bus: config.bus,
      generationRefreshMs: config.generationRefreshMs,
    });
    this.store = store;
    store.on('error', (err: Error) => {
      this.tierErrors++;
      if (this.tierErrorMessages.length < 20) this.tierErrorMessages.push(err.message);
    });
    store.on('bus', (e: BusEvent) => {
      const at = now();
      if (e.type !== 'invalidated') {
        this.events.push({ type: e.type, message: e.message, at, memorySize: memory.size });
        return;
      }
      const m = e.invalidation!;
      const { receipts } = this;
      this.heard = Math.max(this.heard, m.seq);
      receipts.seq.push(m.seq);
      receipts.from.push(m.from);
      receipts.recv.push(at);
      receipts.sent.push(m.at);
      receipts.keys.push(m.keys);
      if (m.generation !== undefined)
        this.clears.push({
          seq: m.seq,
          generation: m.generation,
          storeGeneration: store.generation,
          recv: at,
        });
    });
  }

  callerError(op: string, err: unknown): void {
    this.callerErrors++;
    if (this.callerErrorMessages.length < 20)
      this.callerErrorMessages.push(`${op}: ${err instanceof Error ? err.message : String(err)}`);
  }

  /**
   * The number of the message that will carry what this store changed since its bus last sent:
   * a write or `clear()` hands its keys (or generation) to the bus before it resolves, and the
   * bus sends them in a later macrotask (`setImmediate`), all in its next message. Valid when
   * read in the write's continuation, before anything else gets a turn.
   */
  nextSeq(): number {
    return seqOf(this.store.busStats()) + 1;
  }

  async writeLoop(cmd: Extract<Command, { op: 'startWrites' }>): Promise<WriteLog> {
    const { store } = this;
    const log: WriteLog = { key: [], version: [], del: [], start: [], done: [], seq: [] };
    let next = 0;
    const lane = async (lane: number) => {
      // Each lane owns the keys k with k % lanes === lane: the writes of one key are sequential.
      const owned = Math.ceil((cmd.keys - lane) / cmd.lanes);
      while ((cmd.ops === 0 || next < cmd.ops) && !this.stopWrites) {
        const version = cmd.firstVersion + next++;
        const k = lane + cmd.lanes * Math.floor(Math.random() * owned);
        const del = Math.random() < cmd.deleteRatio;
        const start = now();
        try {
          if (del) await store.delete(`k${k}`);
          else await store.set(`k${k}`, version, cmd.ttl);
        } catch (err) {
          this.callerError(del ? 'delete' : 'set', err);
        }
        const done = now();
        log.seq.push(this.nextSeq());
        log.key.push(k);
        log.version.push(version);
        log.del.push(del ? 1 : 0);
        log.start.push(start);
        log.done.push(done);
        this.opsDone++;
      }
    };
    await Promise.all(Array.from({ length: cmd.lanes }, (_, i) => lane(i)));
    return log;
  }

  async readLane(cmd: Extract<Command, { op: 'startReads' }>, run: ReadRun): Promise<void> {
    const { log } = run;
    for (let n = 1; !run.stop; n++) {
      const k = Math.floor(Math.random() * cmd.keys);
      const start = now();
      try {
        const v = await this.store.get(`k${k}`);
        log.key.push(k);
        log.start.push(start);
        log.end.push(now());
        log.value.push(v === undefined ? -1 : typeof v === 'number' ? v : -2);
        this.readsDone++;
      } catch (err) {
        this.callerError('get', err);
      }
      // A hit in memory resolves without a turn of the event loop: let the bus's messages in.
      if (n % cmd.pauseEvery === 0) await sleep(1);
    }
  }

  /** Ends the loops, then closes the store (at most 10 s). */
  async close(): Promise<void> {
    this.stopWrites = true;
    this.loopDelay.disable();
    if (this.reading !== undefined) this.reading.stop = true;
    await Promise.race([
      (async () => {
        await Promise.allSettled([this.writing, ...(this.reading?.lanes ?? [])]);
        await this.store.disconnect();
      })(),
      sleep(10_000),
    ]);
  }
}

let session: Session | undefined;
/** Problems outside any command (unhandled rejections): reported as caller errors. */
const stray: string[] = [];

function current(): Session {
  if (session === undefined) throw new Error('no store open');
  return session;
}

async function handle(cmd: Command): Promise<unknown> {
  if (cmd.op === 'open') {
    if (session !== undefined) throw new Error('a store is open already');
    const s = new Session(cmd.config);
    session = s;
    await s.store.connect();
    return null;
  }
  if (cmd.op === 'close') {
    const s = session;
    session = undefined;
    await s?.close();
    return null;
  }
  if (cmd.op === 'exit') {
    await shutdown(0);
    return null;
  }
  const s = current();
  const { store, memory } = s;
  switch (cmd.op) {
    case 'state': {
      const near = store.stats()[0];
      const state: WorkerState = {
        name: s.config.name,
        bus: store.busStats(),
        generation: store.generation,
        seq: seqOf(store.busStats()),
        heard: s.heard,
        events: s.events,
        clears: s.clears,
        memoryClears: memory.clears,
        callerErrors: s.callerErrors + stray.length,
        callerErrorMessages: [...s.callerErrorMessages, ...stray],
        tierErrors: s.tierErrors,
        tierErrorMessages: s.tierErrorMessages,
        memory: { size: memory.size, hits: near.hits, misses: near.misses },
        opsDone: s.opsDone,
        readsDone: s.readsDone,
        loopDelay: {
          p50: s.loopDelay.percentile(50) / 1e6,
          p99: s.loopDelay.percentile(99) / 1e6,
          max: s.loopDelay.max / 1e6,
        },
      };
      return state;
    }
    case 'startWrites':
      if (s.writing !== undefined) throw new Error('already writing');
      s.stopWrites = false;
      s.loopDelay.reset();
      s.writing = s.writeLoop(cmd);
      return null;
    case 'endWrites': {
      if (s.writing === undefined)
        return { key: [], version: [], del: [], start: [], done: [], seq: [] };
      s.stopWrites = cmd.stop;
      const log = await s.writing;
      s.writing = undefined;
      return log;
    }
    case 'startReads': {
      if (s.reading !== undefined) throw new Error('already reading');
      const receipts: Receipts = { seq: [], from: [], recv: [], sent: [], keys: [] };
      s.receipts = receipts;
      s.loopDelay.reset();
      const run: ReadRun = {
        stop: false,
        lanes: [],
        log: { key: [], start: [], end: [], value: [], receipts },
      };
      s.reading = run;
      for (let i = 0; i < cmd.lanes; i++) run.lanes.push(s.readLane(cmd, run));
      return null;
    }
    case 'stopReads': {
      const run = s.reading;
      if (run === undefined) return null;
      run.stop = true;
      await Promise.all(run.lanes);
      s.reading = undefined;
      return run.log;
    }
    case 'set': {
      let seq = 0;
      for (const [key, value] of cmd.entries) {
        try {
          await store.set(key, value, cmd.ttl);
        } catch (err) {
          s.callerError('set', err);
        }
        seq = s.nextSeq();
      }
      return { seq };
    }
    case 'get': {
      const hits = store.stats()[0].hits;
      const values: unknown[] = [];
      for (const key of cmd.keys) {
        try {
          values.push(await store.get(key));
        } catch (err) {
          s.callerError('get', err);
          values.push(undefined);
        }
      }
      // `undefined` does not survive JSON in an array: null stands for it.
      return { values: values.map((v) => v ?? null), memoryHits: store.stats()[0].hits - hits };
    }
    case 'clear': {
      try {
        await store.clear();
      } catch (err) {
        s.callerError('clear', err);
      }
      const done = now();
      return { generation: store.generation, done, seq: s.nextSeq() };
    }
    case 'memoryPuts': {
      let count = 0;
      let minTtl = Infinity;
      let maxTtl = -Infinity;
      memory.putAt.forEach((at, i) => {
        if (at < cmd.from || at >= (cmd.to ?? Infinity)) return;
        count++;
        minTtl = Math.min(minTtl, memory.putTtl[i]);
        maxTtl = Math.max(maxTtl, memory.putTtl[i]);
      });
      return { count, minTtl: count > 0 ? minTtl : null, maxTtl: count > 0 ? maxTtl : null };
    }
  }
}

/** Closes the store (if open) and exits. */
const shutdown = exitOnce(() => session?.close());

function send(message: unknown): void {
  process.send?.(message);
}

function main(): void {
  process.on('message', (m: { id: number; cmd: Command }) => {
    handle(m.cmd).then(
      (result) => send({ id: m.id, ok: true, result } satisfies Answer<unknown>),
      (err: unknown) =>
        send({
          id: m.id,
          ok: false,
          error: err instanceof Error ? (err.stack ?? err.message) : String(err),
        } satisfies Answer<unknown>),
    );
  });
  // The spec went away (it crashed, or was killed): nothing is left behind.
  process.on('disconnect', () => void shutdown(1));
  send({ type: 'ready' });
}

process.on('unhandledRejection', (err: unknown) =>
  stray.push(`unhandled rejection: ${err instanceof Error ? err.message : String(err)}`),
);
main();
