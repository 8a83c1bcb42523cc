import type { BusStats, CacheStatus, TagMode } from '../../lib';
import { forkTsWorker } from './ts-worker';
import { WorkerClient } from './worker-client';

/**
 * An app instance in a Node process of its own (`tags-worker.ts`), for the tag tests across
 * processes (test/integration/tags-processes.spec.ts): a `TieredCache` over memory, memcached
 * and Cassandra, with or without a Redis bus, driven over IPC (one request, one answer). A worker
 * holds one cache at a time (`open` … `close`), so that one process serves several tests.
 *
 * Values are `{ key, v, by }`: `v` the version the origin was asked for (so an old value is
 * told from a new one), `by` the pid that computed it.
 */

export interface TagsWorkerConfig {
  namespace: string;
  memcached: string[];
  cassandra: { contactPoints: string[]; localDataCenter: string; keyspace: string };
  /** A Redis bus at this URL; none without. */
  busUrl?: string;
  tagRefreshMs: number;
  /**
   * The store's and read-through's clock: a ManualClock starting here (epoch ms), advanced only
   * by `advance` (the spec moves every worker's clock in step: one clock for the cluster);
   * absent: the system clock.
   */
  manualClock?: number;
}

/** One key of a run, with the tags its entry carries. */
export interface KeySpec {
  key: string;
  tags: string[];
}

export interface TaggedValue {
  key: string;
  v: number;
  by: number;
}

export type Command =
  | { op: 'open'; config: TagsWorkerConfig }
  | { op: 'close' }
  | { op: 'state' }
  /**
   * `callers` concurrent `TieredCache.lookup`s of each key (all keys at once), the origin
   * answering version `version`; with `gate`, the origin waits for `release` before answering.
   */
  | {
      op: 'lookup';
      keys: KeySpec[];
      callers: number;
      version: number;
      ttl: number;
      grace: number;
      gate?: boolean;
      /** getOrSet's `hardTimeout`: a caller with no stale value to answer rejects after it. */
      hardTimeout?: number;
    }
  /** Opens the gate: origin calls waiting answer (and later ones do not wait). */
  | { op: 'release' }
  /**
   * Reads of `keys` through every read path: each with `get`, all with one `getMany` and one
   * `TieredCache.mget`, each with `has`, Keyv's `get`, `CACHE_MANAGER.get`; with `cached`, also a
   * `@Cached` method and a `@Cached` handler over HTTP (those two store nothing they compute: a
   * miss answers version -1; they serve a stale entry as read-through does, and refresh it).
   */
  | { op: 'read'; keys: string[]; cached?: boolean }
  | { op: 'invalidate'; tags: string[]; mode: TagMode }
  /** Origin calls per key since `open` (or the last `calls` with `reset`). */
  | { op: 'calls'; reset?: boolean }
  /** Advances the manual clock (then lets lru-cache see it). */
  | { op: 'advance'; ms: number }
  | { op: 'exit' };

/** What one `lookup` answered, per key: every caller's status and value. */
export type LookupResult = Record<string, Array<{ status: CacheStatus; value: TaggedValue }>>;

/** Plain reads, in the order of the keys asked; `null` for a miss (IPC is JSON). */
export interface ReadResult {
  get: Array<TaggedValue | null>;
  getMany: Array<TaggedValue | null>;
  mget: Array<TaggedValue | null>;
  has: boolean[];
  keyv: Array<TaggedValue | null>;
  cacheManager: Array<TaggedValue | null>;
  cachedMethod?: TaggedValue[];
  cachedHandler?: TaggedValue[];
}

export interface WorkerState {
  pid: number;
  bus: BusStats | undefined;
  /** Tag invalidations the bus brought (`invalidated` events carrying tags). */
  tagMessages: Array<{ tag: string; mode: TagMode; at: number }>;
  /** `error` events (tier failures the store absorbed). */
  tierErrors: string[];
}

/** The spec's side of one worker. */
export class TagsWorker extends WorkerClient<Command> {
  /** Forks `n` workers (no cache open yet). */
  static start(n: number): Promise<TagsWorker[]> {
    return Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const child = await forkTsWorker('tags-worker.ts', {}, `tags worker ${i}`);
        return new TagsWorker(String(i), child, { op: 'exit' });
      }),
    );
  }

  open(config: TagsWorkerConfig): Promise<void> {
    return this.request({ op: 'open', config });
  }

  close(): Promise<void> {
    return this.request({ op: 'close' });
  }

  state(): Promise<WorkerState> {
    return this.request({ op: 'state' });
  }

  lookup(cmd: Omit<Extract<Command, { op: 'lookup' }>, 'op'>): Promise<LookupResult> {
    return this.request({ op: 'lookup', ...cmd });
  }

  release(): Promise<void> {
    return this.request({ op: 'release' });
  }

  read(keys: string[], cached = false): Promise<ReadResult> {
    return this.request({ op: 'read', keys, cached });
  }

  invalidate(tags: string[], mode: TagMode): Promise<void> {
    return this.request({ op: 'invalidate', tags, mode });
  }

  calls(reset = false): Promise<Record<string, number>> {
    return this.request({ op: 'calls', reset });
  }

  advance(ms: number): Promise<void> {
    return this.request({ op: 'advance', ms });
  }

  /** Asks the worker to close its cache (if open) and exit (see `WorkerClient.stop`). */
  exit(graceMs = 15_000): Promise<void> {
    return this.stop(graceMs);
  }
}

/** Origin calls per key, summed over the workers' `calls` answers. */
export function sumCalls(
  answers: ReadonlyArray<Record<string, number>>,
  keys: readonly string[],
): Record<string, number> {
  return Object.fromEntries(keys.map((k) => [k, answers.reduce((n, a) => n + (a[k] ?? 0), 0)]));
}
