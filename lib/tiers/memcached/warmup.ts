import type { Clock } from '../../clock';
import type { MemcachedConnection } from './connection';
import { Opcode } from './protocol';
import type { HashRing } from './ring';

/** What a {@link Warmup} is built with. */
export interface WarmupOptions {
  /** How long the previous placement is read after a server list change, ms; `0`: never. */
  warmupMs: number;
  /** Time source of `warmupMs` (the tier's). */
  clock: Clock;
  /**
   * When the entry in a payload expires, epoch ms of `clock` (`0`: never); `undefined` when it
   * cannot tell. Given by the store (`TierContext.expiresAt`), which owns the encoding.
   */
  expiresAt?: (payload: Buffer) => number | undefined;
  /** The tier's `ttl` option: its TTL cap, ms (`0` or absent: none). */
  ttl?: unknown;
  /** Whether a server is off the ring after a failure (it is then not read). */
  isFailed: (address: string) => boolean;
}

/** What {@link Warmup.stats} tells. */
export interface WarmupStats {
  /** Reads answered by a key's previous owner. */
  hits: number;
  /** Values copied to their new owner (ADD stored, and still current at the check). */
  copies: number;
  /** Copies taken back: the previous owner had lost the value since it was read. */
  undone: number;
  /** The previous servers still read; empty when no warmup runs. */
  from: readonly string[];
  /** Removed servers whose connections are held open for the warmup. */
  retired: readonly string[];
}

/**
 * Warm scale-out (the warm-up route of mcrouter): for `warmupMs` after the server list changes,
 * a key whose owner changed and that misses on its new owner is read from its previous owner;
 * a hit is answered and copied to the new owner with an ADD, so a value written there
 * meanwhile wins. Growing a cluster then costs no far-tier read for the keys it held.
 *
 * - The previous placement is the live ring before the change and its connections: those of
 *   servers still listed are the tier's own; those of removed servers are kept open, for warm
 *   reads only, and closed when the warmup ends (by the clock, checked on use and by an unref'd
 *   timer, by the next change, or by `close`).
 * - A previous owner that fails (connection error, timeout, error status) is not read again
 *   during this warmup: a removed node that is gone costs one failed read, then its keys miss as
 *   they would without warmup.
 * - No resurrection: during warmup a delete of a moved key deletes on the previous owner first,
 *   then on the new one, and a set deletes on the previous owner too (a newer value that expires
 *   or is evicted on the new owner must not uncover the older one). A copy is checked after its
 *   ADD: when the previous owner no longer holds the value read (another process deleted it in
 *   between), the copy is deleted again if it is still the one made (compare-and-delete). Since
 *   deleters reach the previous owner before the new one, either the check sees the delete or
 *   the delete reaches the new owner after the copy.
 * - Only one change back is remembered: a second change ends the first warmup.
 */
export class Warmup {
  /** See {@link WarmupStats}. */
  private hits = 0;
  private copies = 0;
  private undone = 0;
  /** The previous live ring; undefined when no warmup is running. */
  private ring: HashRing | undefined;
  /** Connections of the previous ring's servers still worth reading. */
  private readonly sources = new Map<string, MemcachedConnection>();
  /** Connections of removed servers, held for warm reads only. */
  private retired: MemcachedConnection[] = [];
  private until = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Copies (and their checks) in flight. */
  private readonly pending = new Set<Promise<void>>();

  /** The TTL cap of copies, ms (`0`: none). */
  private readonly capMs: number;

  constructor(private readonly options: WarmupOptions) {
    const ttl = options.ttl;
    this.capMs = typeof ttl === 'number' && Number.isFinite(ttl) && ttl > 0 ? Math.ceil(ttl) : 0;
  }

  /** Whether a warmup is running (ends it first when its time is up). */
  get active(): boolean {
    if (this.ring === undefined) return false;
    if (this.options.clock.now() < this.until) return true;
    void this.end();
    return false;
  }

  stats(): WarmupStats {
    const from = this.active ? [...this.sources.keys()] : [];
    const retired = this.retired.map((c) => c.address);
    return { hits: this.hits, copies: this.copies, undone: this.undone, from, retired };
  }

  /**
   * Starts a warmup from the placement before a server list change, ending any running one.
   * Resolves whether it took `removed` (it then closes them when it ends); false when warmup is
   * off, and the caller closes them.
   */
  begin(
    ring: HashRing,
    connections: ReadonlyMap<string, MemcachedConnection>,
    removed: readonly MemcachedConnection[],
  ): boolean {
    void this.end();
    if (this.options.warmupMs <= 0) return false;
    this.ring = ring;
    for (const [address, connection] of connections) this.sources.set(address, connection);
    this.retired = [...removed];
    this.until = this.options.clock.now() + this.options.warmupMs;
    this.schedule(this.options.warmupMs);
    return true;
  }

  /**
   * The previous owner of `key` when it differs from `owner` (its server now) and is still read;
   * undefined otherwise, and whenever no warmup runs.
   */
  sourceFor(key: string, owner: string): MemcachedConnection | undefined {
    if (!this.active) return undefined;
    const previous = this.ring!.serverFor(key);
    if (previous === owner || this.options.isFailed(previous)) return undefined;
    return this.sources.get(previous);
  }

  /**
   * After a miss of `key` on `owner`: its value on the previous owner, copied to `owner` in the
   * background; undefined when it did not move, or the previous owner misses or fails.
   */
  async read(key: string, owner: MemcachedConnection): Promise<Buffer | undefined> {
    const source = this.sourceFor(key, owner.address);
    if (source === undefined) return undefined;
    let value: Buffer | undefined;
    try {
      value = await source.get(key);
    } catch {
      this.drop(source);
      return undefined;
    }
    if (value !== undefined) this.warmed(key, value, source, owner);
    return value;
  }

  /**
   * {@link read} of the `keys` missing from `found` (which it fills): one pipelined batch per
   * previous owner. Does nothing when no warmup runs.
   * @param ownerOf the connection each key goes to now.
   */
  async readMany(
    keys: readonly string[],
    ownerOf: (key: string) => MemcachedConnection,
    found: Map<string, Buffer>,
  ): Promise<void> {
    if (found.size === keys.length || !this.active) return;
    const groups = new Map<MemcachedConnection, [string, MemcachedConnection][]>();
    for (const key of keys) {
      if (found.has(key)) continue;
      const owner = ownerOf(key);
      const source = this.sourceFor(key, owner.address);
      if (source === undefined) continue;
      const group = groups.get(source);
      if (group) group.push([key, owner]);
      else groups.set(source, [[key, owner]]);
    }
    await Promise.all(
      [...groups].map(async ([source, group]) => {
        let hits: Map<string, Buffer>;
        try {
          hits = await source.getMulti(group.map(([key]) => key));
        } catch {
          return this.drop(source);
        }
        for (const [key, owner] of group) {
          const value = hits.get(key);
          if (value === undefined) continue;
          found.set(key, value);
          this.warmed(key, value, source, owner);
        }
      }),
    );
  }

  /**
   * During warmup, deletes `key` on its previous owner when it moved (its server now is
   * `topology.serverFor(key)`), so that no warm read brings an older value back. Resolves whether
   * that server held it; false when nothing was done. A failure drops that server from the
   * warmup.
   */
  async forget(key: string, topology: { serverFor(key: string): string }): Promise<boolean> {
    if (!this.active) return false;
    const source = this.sourceFor(key, topology.serverFor(key));
    if (source === undefined) return false;
    try {
      return await source.delete(key);
    } catch {
      this.drop(source);
      return false;
    }
  }

  /** Resolves once the copies in flight (and their checks) have settled. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all(this.pending);
  }

  /**
   * Ends the warmup: forgets the previous placement, waits for copies in flight, then closes the
   * connections of removed servers.
   */
  async end(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.ring = undefined;
    this.sources.clear();
    const retired = this.retired;
    this.retired = [];
    if (retired.length === 0) return;
    await this.idle();
    await Promise.all(retired.map((c) => c.close()));
  }

  /** A previous owner that failed is not read again during this warmup. */
  private drop(source: MemcachedConnection): void {
    if (this.sources.get(source.address) === source) this.sources.delete(source.address);
  }

  private schedule(ms: number): void {
    // With an injected clock the timer may fire before the clock says the warmup is over: it then
    // waits again. Unref'd: a warmup never keeps the process alive.
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        if (this.ring === undefined) return;
        const left = this.until - this.options.clock.now();
        if (left <= 0) void this.end();
        else this.schedule(Math.max(left, 1000));
      },
      Math.min(ms, 0x7fffffff),
    );
    this.timer.unref();
  }

  /** A warm hit: counted, and copied to `owner` in the background. */
  private warmed(
    key: string,
    value: Buffer,
    source: MemcachedConnection,
    owner: MemcachedConnection,
  ): void {
    this.hits++;
    const ttlMs = this.copyTtl(value);
    if (ttlMs === undefined) return;
    const copy = this.copy(key, value, ttlMs, source, owner).catch(() => undefined);
    this.pending.add(copy);
    void copy.finally(() => this.pending.delete(copy));
  }

  /**
   * The copy's TTL: the entry's remaining time, from the store's `expiresAt` hook, capped by the
   * tier's `ttl`. Without the hook (a tier built outside a store), or for a payload it cannot
   * read, memcached does not say how long the previous owner keeps the item, so the copy lives at
   * most the tier's `ttl` cap; with no cap it is not made at all (it could otherwise outlive the
   * TTL its writer asked for): the value is still answered. Undefined: no copy (nor for an
   * expired entry).
   */
  private copyTtl(value: Buffer): number | undefined {
    const cap = this.capMs;
    const expiresAt = this.options.expiresAt?.(value);
    if (expiresAt === undefined) return cap > 0 ? cap : undefined;
    if (expiresAt === 0) return cap;
    const remaining = expiresAt - this.options.clock.now();
    if (remaining <= 0) return undefined;
    return cap > 0 ? Math.min(remaining, cap) : remaining;
  }

  private async copy(
    key: string,
    value: Buffer,
    ttlMs: number,
    source: MemcachedConnection,
    owner: MemcachedConnection,
  ): Promise<void> {
    const outcome = await owner.store(Opcode.Add, key, value, owner.expiry(ttlMs));
    if (outcome !== 'stored') return; // a value written meanwhile wins
    const still = await source.get(key).catch(() => undefined);
    if (still !== undefined && still.equals(value)) {
      this.copies++;
      return;
    }
    // Deleted (or replaced) on the previous owner since it was read: take the copy back unless
    // something newer replaced it already.
    const now = await owner.getWithCas(key);
    if (now !== undefined && now.value.equals(value)) await owner.deleteIfUnchanged(key, now.cas);
    this.undone++;
  }
}
