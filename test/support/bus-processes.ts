import type { BusEvent, BusOptions, BusStats } from '../../lib';
import { eventually } from './eventually';
import { forkTsWorker } from './ts-worker';
import { WorkerClient } from './worker-client';

export type { Answer } from './worker-client';

/**
 * A store in a Node process of its own (`bus-worker.ts`) for the invalidation bus tests across
 * processes (test/integration/bus-processes.spec.ts), driven over IPC: one request, one answer.
 * A worker holds one store at a time (`open`, `close`), so that one process serves several
 * tests. Times are epoch ms with sub-ms precision (`performance.timeOrigin + performance.now()`),
 * so that the processes of one machine can be compared.
 */

/** What a worker's store is built from (JSON). Tiers: memory, memcached, Cassandra. */
export interface BusWorkerConfig {
  name: string;
  namespace: string;
  memcached: string[];
  cassandra: { contactPoints: string[]; localDataCenter: string; keyspace: string };
  bus: Pick<BusOptions, 'type' | 'url' | 'degradedTtl' | 'timeout'>;
  generationRefreshMs: number;
}

export type Command =
  /** Creates the store and connects it (the bus may come up later). */
  | { op: 'open'; config: BusWorkerConfig }
  /** Ends the loops and closes the store. */
  | { op: 'close' }
  | { op: 'state' }
  /**
   * Writes `ops` times (`0`: until `endWrites` stops it), in `lanes` concurrent loops of one
   * write at a time, each lane over keys of its own (the writes of one key never overlap): a
   * random key of `k0`…`k<keys - 1>`, deleted with probability `deleteRatio`, else set to its
   * version (`firstVersion` + i, i counting writes as they start) for `ttl` ms.
   */
  | {
      op: 'startWrites';
      keys: number;
      lanes: number;
      ops: number;
      firstVersion: number;
      deleteRatio: number;
      ttl: number;
    }
  /** Waits for the write loop to end (`stop`: ends it first); answers its {@link WriteLog}. */
  | { op: 'endWrites'; stop: boolean }
  /**
   * `lanes` loops each reading a random key of `k0`…`k<keys - 1>` with `get`, pausing 1 ms
   * every `pauseEvery` reads, until `stopReads`, which answers the {@link ReadLog}.
   */
  | { op: 'startReads'; keys: number; lanes: number; pauseEvery: number }
  | { op: 'stopReads' }
  | { op: 'set'; entries: Array<[key: string, value: unknown]>; ttl: number }
  | { op: 'get'; keys: string[] }
  | { op: 'clear' }
  /** The memory tier's writes (their TTL) made in [from, to) of this process's clock (to: now). */
  | { op: 'memoryPuts'; from: number; to?: number }
  | { op: 'exit' };

/** A `bus` event as the worker recorded it (`invalidated` ones are receipts, see {@link Receipts}). */
export interface RecordedEvent {
  type: BusEvent['type'];
  message: string;
  at: number;
  /** Entries in the memory tier when the event was emitted (after the flush that comes with it). */
  memorySize: number;
}

/** A `clear()` of the memory tier: when, and how many entries it dropped. */
export interface MemoryClear {
  at: number;
  sizeBefore: number;
}

export interface WorkerState {
  name: string;
  bus: BusStats | undefined;
  generation: number;
  /** Messages this instance's bus numbered so far (published, failed, dropped, in flight). */
  seq: number;
  /** Highest sequence number received (only one instance writes in these tests). */
  heard: number;
  events: RecordedEvent[];
  /** Receipts of messages that carried a generation (another instance's `clear()`). */
  clears: Array<{ seq: number; generation: number; storeGeneration: number; recv: number }>;
  memoryClears: MemoryClear[];
  /** Rejections of the store's own calls (get, set, delete, clear): must stay 0. */
  callerErrors: number;
  callerErrorMessages: string[];
  /** `error` events (tier failures, absorbed by the store). */
  tierErrors: number;
  tierErrorMessages: string[];
  memory: { size: number; hits: number; misses: number };
  opsDone: number;
  readsDone: number;
  /** How late this process's event loop ran its turns while the store was open: p50/p99/max, ms. */
  loopDelay: { p50: number; p99: number; max: number };
}

/**
 * A's writes, in the order they completed: write i set `k<key[i]>` to `version[i]`, or deleted
 * it (`del[i]` 1; the delete is numbered `version[i]`).
 */
export interface WriteLog {
  key: number[];
  version: number[];
  del: number[];
  /** When the call was made. */
  start: number[];
  /** When it resolved. */
  done: number[];
  /** The sequence number of the bus message that carried it (see `nextSeq` in bus-worker.ts). */
  seq: number[];
}

/** Messages received (`invalidated` events) since `startReads`. */
export interface Receipts {
  seq: number[];
  from: string[];
  /** When the event was emitted here. */
  recv: number[];
  /** When the sender published the message (its `at`: the sender's clock, this machine's). */
  sent: number[];
  keys: string[][];
}

/** Reads since `startReads`: `k<key[i]>` read from `start[i]` to `end[i]` gave `value[i]`. */
export interface ReadLog {
  key: number[];
  start: number[];
  end: number[];
  /** The version read; -1 for `undefined`; -2 for anything else. */
  value: number[];
  receipts: Receipts;
}

/** The spec's side of one worker. */
export class BusWorker extends WorkerClient<Command> {
  /** Forks one worker (no store yet). */
  static async start(name: string): Promise<BusWorker> {
    const child = await forkTsWorker('bus-worker.ts', {}, `bus worker ${name}`);
    return new BusWorker(name, child, { op: 'exit' });
  }

  state(): Promise<WorkerState> {
    return this.request<WorkerState>({ op: 'state' });
  }

  /** Asks the worker to close its store (if open) and exit (see `WorkerClient.stop`). */
  close(graceMs = 15_000): Promise<void> {
    return this.stop(graceMs);
  }
}

/** Waits until every worker's bus is up. */
export async function allUp(workers: BusWorker[], ms = 20_000): Promise<boolean> {
  return eventually(
    async () => (await Promise.all(workers.map((w) => w.state()))).every((s) => s.bus?.up),
    ms,
  );
}

/**
 * Waits until every receiver has heard the sender's messages up to its sequence number `seq`
 * (valid while nothing is lost: messages of one sender arrive in order).
 */
export async function caughtUp(receivers: BusWorker[], seq: number, ms = 10_000): Promise<boolean> {
  return eventually(
    async () => (await Promise.all(receivers.map((w) => w.state()))).every((s) => s.heard >= seq),
    ms,
  );
}

/** The `q` quantile (0..1) of `values` (nearest rank); NaN for none. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** What a key holds after a write: its version, or deleted. */
export interface KeyState {
  version: number;
  del: boolean;
}

/** A read found older than a write it must see (see {@link analyse}). */
export interface StaleRead {
  key: number;
  start: number;
  end: number;
  value: number;
  /** The write it must see: its version, whether a delete, when it was received here. */
  mustSee: { version: number; del: boolean; recv: number };
}

export interface ReaderAnalysis {
  reads: number;
  /** Per write delivered here: receipt here minus the write's completion in the writer, ms. */
  delivery: number[];
  /**
   * The parts of each delivery time: from the write's completion to its message's publish (in
   * the writer), and from that publish to the receipt here (broker, network, this process).
   */
  queued: number[];
  hop: number[];
  /** Writes whose message never arrived here, or arrived without their key. */
  undelivered: number;
  misdelivered: number;
  /** Reads older than a write whose invalidation had reached this reader before the read began. */
  stale: StaleRead[];
  /**
   * Reads older than a write completed before they began, but whose invalidation had not
   * reached this reader yet: allowed (within the delivery time), counted to show the window.
   */
  staleWithinDelivery: number;
  /** Reads of a value the writer never wrote to that key (in this phase). */
  wrongValues: number;
}

/**
 * Checks one reader against the writer's log. Definitions (all per key; versions only grow):
 *
 * - Write W (a set to version n, or a delete numbered n) of key k is *delivered* to reader R at
 *   `recv_R(W)`: when R's store emitted the `invalidated` event of the message carrying W (the
 *   message's sequence number is in the write log, its keys must include k). Delivery time:
 *   `recv_R(W) - done_A(W)` (done: when the writer's call resolved; the two clocks are one
 *   machine's).
 * - A read of k in R that *began* at `start` (R's clock) must see the last write W of k with
 *   `recv_R(W) < start` (both times on R's clock: no clock comparison between processes), or a
 *   later one, else it is *stale beyond delivery*: it returned a version < n (the value of a set
 *   before W, n being W's number), or `undefined` when W is a set and no later delete of k had
 *   begun in A before the read ended (a write of k may be landing while the read runs: A's
 *   writes of one key are sequential, so what a read may see is W or a later write). `initial[k]`,
 *   when given, is a state every read must see (the writes before this phase, all landed, and
 *   delivered or flushed, before it began).
 * - A read older, in that sense, than a write completed before it began (`done_A(W) < start`)
 *   but not delivered to R yet is *stale within delivery*: the bus allows it.
 */
export function analyse(
  writes: WriteLog,
  reader: ReadLog,
  initial: ReadonlyArray<KeyState | undefined> = [],
): ReaderAnalysis {
  const { receipts } = reader;
  const bySeq = new Map<number, number>();
  receipts.seq.forEach((s, i) => bySeq.set(s, i));
  const n = writes.key.length;
  const recv = new Float64Array(n).fill(Infinity);
  const delivery: number[] = [];
  const queued: number[] = [];
  const hop: number[] = [];
  let undelivered = 0;
  let misdelivered = 0;
  const byKey = new Map<number, number[]>();
  const setOf = new Map<number, number>(); // version → key, for sets
  for (let i = 0; i < n; i++) {
    const k = writes.key[i];
    if (!byKey.has(k)) byKey.set(k, []);
    byKey.get(k)!.push(i);
    if (!writes.del[i]) setOf.set(writes.version[i], k);
    const r = bySeq.get(writes.seq[i]);
    if (r === undefined) {
      undelivered++;
      continue;
    }
    if (!receipts.keys[r].includes(`k${k}`)) {
      misdelivered++;
      continue;
    }
    recv[i] = receipts.recv[r];
    delivery.push(receipts.recv[r] - writes.done[i]);
    queued.push(receipts.sent[r] - writes.done[i]);
    hop.push(receipts.recv[r] - receipts.sent[r]);
  }
  /**
   * Whether `value`, read of key `k` by a read that ended at `end`, is older than `w`: a version
   * before it, or nothing after a set when no later delete had begun.
   */
  const older = (value: number, w: KeyState, k: number, end: number) => {
    if (value !== -1) return value < w.version;
    if (w.del) return false;
    return !(byKey.get(k) ?? []).some(
      (i) => writes.del[i] === 1 && writes.version[i] > w.version && writes.start[i] < end,
    );
  };
  /** The last of `ops` (write indexes of one key, in order) with `time(i) < t`; -1 for none. */
  const lastBefore = (ops: number[], time: (i: number) => number, t: number) => {
    for (let i = ops.length - 1; i >= 0; i--) if (time(ops[i]) < t) return i;
    return -1;
  };
  const firstVersion = Math.min(...writes.version);
  const stale: StaleRead[] = [];
  let staleWithinDelivery = 0;
  let wrongValues = 0;
  for (let j = 0; j < reader.key.length; j++) {
    const k = reader.key[j];
    const start = reader.start[j];
    const end = reader.end[j];
    const value = reader.value[j];
    if (value === -2 || (value >= firstVersion && setOf.get(value) !== k)) wrongValues++;
    const ops = byKey.get(k) ?? [];
    const d = lastBefore(ops, (i) => recv[i], start);
    const w: KeyState | undefined =
      d >= 0 ? { version: writes.version[ops[d]], del: writes.del[ops[d]] === 1 } : initial[k];
    if (w !== undefined && older(value, w, k, end)) {
      stale.push({
        key: k,
        start,
        end,
        value,
        mustSee: { ...w, recv: d >= 0 ? recv[ops[d]] : -Infinity },
      });
      continue;
    }
    const c = lastBefore(ops, (i) => writes.done[i], start);
    if (c > d) {
      const cw = { version: writes.version[ops[c]], del: writes.del[ops[c]] === 1 };
      if (older(value, cw, k, end)) staleWithinDelivery++;
    }
  }
  return {
    reads: reader.key.length,
    delivery,
    queued,
    hop,
    undelivered,
    misdelivered,
    stale,
    staleWithinDelivery,
    wrongValues,
  };
}

/** The state of every key after `writes` (on top of `before`). */
export function finalStates(
  writes: WriteLog,
  before: ReadonlyArray<KeyState | undefined> = [],
): Array<KeyState | undefined> {
  const out = [...before];
  for (let i = 0; i < writes.key.length; i++)
    out[writes.key[i]] = { version: writes.version[i], del: writes.del[i] === 1 };
  return out;
}
