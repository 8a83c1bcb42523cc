import type { TierError } from '../errors';
import type { BusEvent } from './coherence';

/** How a read-through origin call (the factory of `getOrSet`, a `@Cached` method) ended. */
export type OriginOutcome = 'ok' | 'error';

/** What a read-through call did about the key's lease (see `herd/lease.ts`). */
export type LeaseEventOutcome =
  /** This caller took it: it computes the value. */
  | 'acquired'
  /** Another holder had it: this caller waited for the value (or for the lease to free up). */
  | 'waited'
  /** It was taken from this caller (a delete, or it expired) before the value was stored. */
  | 'lost'
  /** No shared tier holds leases (none, or it failed): in-process protection only. */
  | 'local';

/**
 * Every event of a store, by name, with what it carries. Tier names are the chain's (`memory`,
 * `memcached`, `cassandra[1]`…); keys are the caller's.
 */
export interface CacheEventMap {
  /** A read answered by `tier` (a stale entry served by read-through counts too). */
  hit: { tier: string };
  /** A read `tier` could not answer (nothing there, expired, or undecodable). */
  miss: { tier: string };
  /** Entries copied into `tier` after a hit farther away. */
  backfill: { tier: string; entries: number };
  /** One operation sent to a remote tier (reads, writes, leases, counters), timed. */
  'tier-call': { tier: string; op: string; seconds: number; ok: boolean };
  /** A tier failed (also the store's `error` event). */
  'tier-error': TierError;
  /** A tier's circuit opened (its calls are skipped) or closed again. */
  circuit: { tier: string; state: 'open' | 'closed' };
  /** Read-through served a stale value (within `grace`) while a refresh runs. */
  stale: { key: string };
  /** Read-through called the origin (the factory), with how long it took and how it ended. */
  origin: { key: string; seconds: number; outcome: OriginOutcome };
  /** What a read-through call did about the key's lease. */
  lease: { key: string; outcome: LeaseEventOutcome };
  /** A background refresh failed (the stale value, if any, is kept). */
  'refresh-failed': { key: string; error: unknown };
  /** The invalidation bus went down, came back, found a gap, or applied a message. */
  bus: BusEvent;
}

export type CacheEventName = keyof CacheEventMap;
export type CacheEventListener<K extends CacheEventName> = (event: CacheEventMap[K]) => void;

const NAMES: readonly CacheEventName[] = [
  'hit',
  'miss',
  'backfill',
  'tier-call',
  'tier-error',
  'circuit',
  'stale',
  'origin',
  'lease',
  'refresh-failed',
  'bus',
];

/**
 * The typed events of one store (`store.events`, `TieredCache.events`). Emitting costs nothing
 * while an event has no listener: the hot paths read {@link listened} before building one. A
 * listener never slows or breaks the cache beyond its own run time: what it throws is caught,
 * and reported once per listener (the Nest module logs it).
 */
export class CacheEvents {
  /** Whether each event has a listener. */
  readonly listened: Record<CacheEventName, boolean> = Object.fromEntries(
    NAMES.map((n) => [n, false]),
  ) as Record<CacheEventName, boolean>;
  private readonly listeners = new Map<CacheEventName, Array<(event: never) => void>>();
  private readonly reported = new WeakSet<object>();

  /** @param onListenerError told of the first error each listener throws. */
  constructor(private readonly onListenerError: (event: string, error: unknown) => void) {}

  /** Listens to `name`; returns the function that stops listening. */
  on<K extends CacheEventName>(name: K, listener: CacheEventListener<K>): () => void {
    if (!NAMES.includes(name))
      throw new TypeError(
        `unknown cache event ${JSON.stringify(name)}: one of ${NAMES.map((n) => JSON.stringify(n)).join(', ')}`,
      );
    if (typeof listener !== 'function')
      throw new TypeError(`a listener of ${JSON.stringify(name)} must be a function`);
    const list = [...(this.listeners.get(name) ?? []), listener as (event: never) => void];
    this.listeners.set(name, list);
    this.listened[name] = true;
    return () => this.off(name, listener);
  }

  off<K extends CacheEventName>(name: K, listener: CacheEventListener<K>): void {
    const list = (this.listeners.get(name) ?? []).filter((l) => l !== listener);
    this.listeners.set(name, list);
    this.listened[name] = list.length > 0;
  }

  emit<K extends CacheEventName>(name: K, event: CacheEventMap[K]): void {
    const list = this.listeners.get(name);
    if (list === undefined) return;
    for (const listener of list) {
      try {
        (listener as CacheEventListener<K>)(event);
      } catch (err) {
        if (this.reported.has(listener)) continue;
        this.reported.add(listener);
        this.onListenerError(name, err);
      }
    }
  }
}
