import { systemClock, type Clock } from '../../clock';
import { MemcachedError, TieredCacheError } from '../../errors';
import { at } from '../../options';
import { checkRaised } from '../max-register';
import { settleAll } from '../settle-all';
import { MAX_KEY_BYTES, type Tier, type TierCapabilities, type TierWrite } from '../tier.interface';
import type { TierContext } from '../tier-options';
import { RaiseMerger, raiseOn } from './cas-raise';
import { isRetryable, type MemcachedConnection } from './connection';
import { ElastiCacheDiscovery, namedAfter } from './discovery/elasticache-discovery';
import { resolveMemcachedOptions, type MemcachedTierOptions } from './memcached.options';
import { Opcode, Status, toMemcachedExpiry } from './protocol';
import { checkKey } from './memcached-key';
import { Topology } from './topology';
import type { Warmup } from './warmup';

const CAPABILITIES = {
  local: false,
  leases: 'atomic',
  counters: 'atomic',
  // The protocol has no key listing.
  enumerate: false,
  ttlResolutionMs: 1000,
  maxKeyBytes: MAX_KEY_BYTES,
} as const satisfies TierCapabilities;

/**
 * A memcached cluster as a cache tier.
 *
 * - One memjs client per server (`retries: 0`, silent), keys placed by a ketama consistent-hash
 *   ring, so adding one server to `n` remaps about `1/(n+1)` of the keys.
 * - `getMany` sends one pipelined batch per server (quiet gets and a NOOP in one write).
 * - A get/set/add/delete/raise that fails with a connection error or a timeout is retried up to
 *   `retries` times on the server owning the key at retry time; `increment` never is.
 * - Failover, per server: a server whose request fails with a connection error or times out
 *   leaves the ring for `failoverTime` ms, so the retry, and every later request for its keys,
 *   goes to the server that now owns the key (or to the `gutter` pool); it is probed afterwards
 *   and rejoins when it answers (see `Topology`). Its errors are marked `partial` while another
 *   server is live, so the store's circuit for the whole tier stays closed.
 * - With `discovery`, the node list comes from an ElastiCache configuration endpoint, polled every
 *   `intervalMs` and right after connection errors (see {@link ElastiCacheDiscovery}).
 * - Every attempt is bounded by `timeout` (connecting included); failures reject, misses resolve
 *   `undefined`.
 * - Warm scale-out: for `warmup` ms after the server list changes, a key that moved and misses is
 *   read from its previous owner and copied over (see {@link Warmup}).
 */
export class MemcachedTier implements Tier<Buffer> {
  /** Always `memcached`. */
  readonly kind = 'memcached';
  readonly capabilities: TierCapabilities;
  readonly name: string;
  /**
   * Writes skipped (and older values deleted) because the value exceeded `maxValueBytes`.
   * @internal
   */
  oversizeSkips = 0;

  private readonly retries: number;
  private readonly maxValueBytes: number;
  private readonly topology: Topology;
  private readonly discovery: ElastiCacheDiscovery | undefined;
  private discovering: Promise<void> | undefined;
  private closed = false;
  private readonly raises = new RaiseMerger((key, n, ttlMs) =>
    this.withRetries(key, (c) => raiseOn(c, key, n, c.expiry(ttlMs))),
  );

  /**
   * @param options `servers` or `discovery`, `timeout`, `retries`, `maxValueBytes`,
   *   `failoverTime` (see {@link MemcachedTierOptions}).
   * @param context `name` (default: the `name` option, else `memcached`), `path` of the options
   *   in error messages (default `memcached`), `clock` (tests inject one), `expiresAt` (warmup).
   * @throws InvalidOptionError on an invalid server list or option, or unless exactly one of
   *   `servers` and `discovery` is given.
   */
  constructor(options: MemcachedTierOptions, context: TierContext = {}) {
    const path = context.path ?? 'memcached';
    const clock: Clock = context.clock ?? systemClock;
    const resolved = resolveMemcachedOptions(options, path);
    this.name = context.name ?? options.name ?? 'memcached';
    this.retries = resolved.retries;
    this.maxValueBytes = resolved.maxValueBytes;
    this.capabilities = { ...CAPABILITIES, maxValueBytes: resolved.maxValueBytes };
    const gutter = resolved.gutter;
    const shared = { timeoutMs: resolved.timeoutMs, failoverMs: resolved.failoverMs, clock };
    const pool = gutter && {
      ...shared,
      name: `${this.name} gutter`,
      path: at(at(path, 'gutter'), 'servers'),
      onConnectionError: () => undefined,
      maxTtlMs: gutter.ttlMs,
    };
    this.topology = new Topology(
      {
        ...shared,
        name: this.name,
        path: at(path, 'servers'),
        onConnectionError: () => this.discovery?.requestRefresh(),
        gutter: pool && new Topology(pool, gutter.servers),
        warmup: { warmupMs: resolved.warmupMs, expiresAt: context.expiresAt, ttl: options.ttl },
      },
      resolved.servers,
    );
    this.discovery =
      resolved.discovery === undefined
        ? undefined
        : new ElastiCacheDiscovery(
            resolved.discovery,
            (servers) => this.setServers(servers),
            at(path, 'discovery'),
          );
  }

  /**
   * The servers keys are placed on, `host:port`: every known server except failed ones (all of
   * them when every one failed). Empty before the first discovery.
   */
  get servers(): readonly string[] {
    return this.topology.servers;
  }

  /**
   * Servers taken off the ring after a connection error or a timeout, until a probe finds them
   * answering.
   * @internal
   */
  get failedServers(): readonly string[] {
    return this.topology.failedServers;
  }

  /** Version of the discovered configuration in use (-1: the endpoint alone); `undefined` without discovery. */
  get configVersion(): number | undefined {
    return this.discovery?.version;
  }

  /**
   * The discovery poller, when the node list comes from `discovery`.
   * @internal
   */
  get clusterDiscovery(): ElastiCacheDiscovery | undefined {
    return this.discovery;
  }

  /**
   * The server (`host:port`) that owns `key` on the current ring.
   *
   * @throws TieredCacheError `E_NOT_CONNECTED` before the first discovery.
   * @internal
   */
  serverFor(key: string): string {
    return this.topology.serverFor(key);
  }

  /**
   * Socket writes made per server since it joined the ring (one per request or pipeline).
   * @internal
   */
  writesPerServer(): Record<string, number> {
    return this.topology.writesPerServer();
  }

  /** Warm scale-out (the `warmup` option): its `stats()`, `idle()`. @internal */
  get warmup(): Warmup {
    return this.topology.warmup;
  }

  /**
   * Probes now (NOOP) the failed servers whose `failoverTime` has passed, as the next request would
   * in the background, and resolves when done: those that answer are back on the ring, the others
   * stay off for another `failoverTime`. Joins a probe already running.
   * @internal
   */
  probeFailedServers(): Promise<void> {
    return this.topology.probeFailedServers();
  }

  /**
   * Replaces the server list: servers already known keep their connection, new ones get one,
   * removed ones are closed once their requests in flight have settled (after the `warmup`,
   * during which they are read for the keys they held, see {@link Warmup}). Requests already sent
   * complete on the server they were sent to; retries and new requests use the new ring.
   *
   * @throws InvalidOptionError on an invalid list (the current ring is then kept).
   * @throws TieredCacheError `E_CLOSED` after {@link close}.
   */
  setServers(servers: string[]): void {
    this.assertOpen();
    this.topology.setServers(servers);
  }

  /**
   * With `discovery`, runs the first discovery (once; again after a failure). Then pings every
   * server (NOOP); a server that cannot be reached leaves the ring (see `failoverTime`). Resolves
   * when at least one answers.
   *
   * @throws DiscoveryError naming the endpoint when the first discovery fails without
   *   `discovery.ignoreErrors`.
   * @throws TieredCacheError `E_UNREACHABLE` naming every server and its failure when none
   *   answers.
   */
  async connect(): Promise<void> {
    this.assertOpen();
    if (this.discovery && !this.topology.ready) {
      this.discovering ??= this.discovery
        .start()
        .catch((error: unknown) => Promise.reject(namedAfter(this.name, error)))
        .finally(() => (this.discovering = undefined));
      await this.discovering;
    }
    await this.topology.reach();
  }

  /** The value at `key`, or `undefined` on a miss. Retried on connection errors and timeouts. */
  get(key: string): Promise<Buffer | undefined> {
    // Not `async`: one promise fewer on every memcached hit.
    try {
      checkKey(key);
    } catch (err) {
      return Promise.reject(err);
    }
    const read = this.withRetries(key, (c) => c.get(key));
    const w = this.warmup;
    return w.active ? read.then((v) => v ?? w.read(key, this.topology.connectionFor(key))) : read;
  }

  /**
   * Values of `keys` in the same order (`undefined` for misses): keys are grouped by owning
   * server and each group is fetched in one pipelined round trip (GETKQ per key plus a NOOP, one
   * socket write), all servers concurrently. A failed group is retried (regrouped on the current
   * ring); if it still fails the whole call rejects.
   */
  async getMany(keys: readonly string[]): Promise<(Buffer | undefined)[]> {
    this.assertOpen();
    keys.forEach(checkKey);
    const found = new Map<string, Buffer>();
    const unique = [...new Set(keys)];
    await this.fetchMany(unique, found, this.retries);
    await this.warmup.readMany(unique, (key) => this.topology.connectionFor(key), found);
    return keys.map((key) => found.get(key));
  }

  /**
   * Stores `value` for `ttlMs` (0: no expiry). A value larger than `maxValueBytes` is not stored:
   * any older value at `key` is deleted instead (so it is never served after this newer write)
   * and the call resolves normally.
   */
  async set(key: string, value: Buffer, ttlMs: number): Promise<void> {
    checkKey(key);
    toMemcachedExpiry(ttlMs); // validates
    if (value.length > this.maxValueBytes) return this.skipOversize(key);
    const write = this.withRetries(key, (c) => c.store(Opcode.Set, key, value, c.expiry(ttlMs)));
    // During warmup the older value on the previous owner goes too (see Warmup).
    const [outcome] = await Promise.all([write, this.warmup.forget(key, this.topology)]);
    // The server's own item limit (memcached has already dropped the older value for a SET).
    if (outcome === 'too-large') this.oversizeSkips++;
  }

  /** {@link set} of every entry, concurrently; rejects with the first failure once all settle. */
  async setMany(entries: readonly TierWrite<Buffer>[]): Promise<void> {
    await settleAll(entries.map((e) => this.set(e.key, e.value, e.ttlMs)));
  }

  /**
   * Stores `value` only when `key` is absent; resolves true when this call stored it. An oversize
   * value is not stored, deletes any existing value and resolves false. A retried ADD whose first
   * attempt did store (the answer was lost) resolves false.
   */
  async add(key: string, value: Buffer, ttlMs: number): Promise<boolean> {
    checkKey(key);
    toMemcachedExpiry(ttlMs); // validates
    if (value.length > this.maxValueBytes) {
      await this.skipOversize(key);
      return false;
    }
    const outcome = await this.withRetries(key, (c) =>
      c.store(Opcode.Add, key, value, c.expiry(ttlMs)),
    );
    if (outcome === 'too-large') {
      await this.skipOversize(key);
      return false;
    }
    return outcome === 'stored';
  }

  /**
   * Compare-and-delete: a GET for the value and its CAS version, then, when the value equals
   * `expected`, a DELETE carrying that version (memcached refuses it if the item changed in
   * between). Not retried after the GET: the item's owner may have changed.
   */
  async deleteIf(key: string, expected: Buffer): Promise<boolean> {
    checkKey(key);
    this.assertOpen();
    if (!this.topology.ready) await this.connect();
    const connection = this.topology.connectionFor(key);
    try {
      const found = await connection.getWithCas(key);
      if (found === undefined || !found.value.equals(expected)) return false;
      return await connection.deleteIfUnchanged(key, found.cas);
    } catch (error) {
      this.topology.noteFailure(connection, error);
      throw error;
    }
  }

  /**
   * Deletes `key`; resolves true when the server held it, false when it did not. Retried on
   * connection errors and timeouts (a retried DELETE whose first attempt did delete, the answer
   * being lost, resolves false).
   */
  delete(key: string): Promise<boolean> {
    try {
      checkKey(key);
    } catch (err) {
      return Promise.reject(err);
    }
    const remove = () => this.withRetries(key, (c) => c.delete(key));
    if (!this.warmup.active) return remove();
    return this.warmup.forget(key, this.topology).then(async (held) => (await remove()) || held);
  }

  /**
   * {@link delete} of every key, concurrently; resolves true when any was held. Rejects with the
   * first failure once all settle.
   */
  async deleteMany(keys: readonly string[]): Promise<boolean> {
    const deleted = await settleAll([...new Set(keys)].map((key) => this.delete(key)));
    return deleted.includes(true);
  }

  /**
   * memcached INCR (`by >= 0`) or DECR (`by < 0`, by `|by|`, flooring at 0); an absent counter is
   * created at `max(by, 0)` with the expiry of `ttlMs` (which an existing counter keeps unchanged).
   * Resolves the new value. Never retried: a lost answer could otherwise count twice.
   *
   * @throws RangeError when `by` is not a safe integer.
   */
  async increment(key: string, by: number, ttlMs: number): Promise<number> {
    checkKey(key);
    if (!Number.isSafeInteger(by)) {
      throw new RangeError(`${this.name}: increment by must be a safe integer, got ${by}`);
    }
    toMemcachedExpiry(ttlMs); // validates
    this.assertOpen();
    if (!this.topology.ready) await this.connect();
    for (let attempt = 0; ; attempt++) {
      const connection = this.topology.connectionFor(key);
      try {
        return await connection.increment(key, by, connection.expiry(ttlMs));
      } catch (error) {
        // The server leaves the ring for the next call, but this one is not sent again: its
        // answer may have been lost after the server counted it.
        this.topology.noteFailure(connection, error);
        // Except NOT_STORED: two first increments of an absent counter raced and memcached's
        // internal ADD of the initial value lost. Nothing was counted, so sending again is safe.
        const raced = error instanceof MemcachedError && error.status === Status.NotStored;
        if (!raced || attempt >= 2 || this.closed) throw error;
      }
    }
  }

  /**
   * Max-register (see `Tier.raise`): compare-and-set rounds on the key's owner ({@link raiseOn}),
   * concurrent raises of a key merged ({@link RaiseMerger}); a value that is not a decimal number
   * is replaced; each write sets the expiry. Idempotent, so retried like {@link set}. After a
   * failover the key's new owner holds only the raises made since, and a server rejoining without
   * a gutter its old number.
   * @throws RangeError when `n` is not a non-negative safe integer.
   */
  async raise(key: string, n: number, ttlMs: number): Promise<void> {
    checkKey(key);
    checkRaised(this.name, n);
    toMemcachedExpiry(ttlMs); // validates
    await this.raises.raise(key, n, ttlMs);
  }

  /**
   * Stops discovery polling, waits for requests and probes in flight, then closes every socket;
   * the tier is unusable afterwards.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.discovery?.stop();
    await this.discovering?.catch(() => undefined);
    await this.topology.close();
  }

  private assertOpen(): void {
    if (this.closed) throw this.closedError();
  }

  private closedError(): TieredCacheError {
    return new TieredCacheError('E_CLOSED', `${this.name}: closed`);
  }

  /**
   * Runs `op` on the key's owner, re-resolving the owner for each of up to `retries` retries (after
   * a connection error the failed server is off the ring, so the retry goes to the next owner).
   */
  private withRetries<T>(
    key: string,
    op: (c: MemcachedConnection) => Promise<T>,
    attempt = 0,
  ): Promise<T> {
    if (this.closed) return Promise.reject(this.closedError());
    if (!this.topology.ready) return this.connect().then(() => this.withRetries(key, op, attempt));
    // Promise chaining rather than an async function: this sits on every memcached hit, and the
    // common case (one attempt on a known ring) then costs no extra promise.
    const connection = this.topology.connectionFor(key);
    return op(connection).catch((error: unknown) => {
      this.topology.noteFailure(connection, error);
      if (attempt >= this.retries || !isRetryable(error) || this.closed) throw error;
      return this.withRetries(key, op, attempt + 1);
    });
  }

  /** One pipelined batch per owning server; failed batches are regrouped and retried. */
  private async fetchMany(
    keys: readonly string[],
    found: Map<string, Buffer>,
    retriesLeft: number,
  ): Promise<void> {
    if (keys.length === 0) return;
    this.assertOpen();
    if (!this.topology.ready) await this.connect();
    const groups = new Map<MemcachedConnection, string[]>();
    for (const key of keys) {
      const connection = this.topology.connectionFor(key);
      const group = groups.get(connection);
      if (group) group.push(key);
      else groups.set(connection, [key]);
    }
    await settleAll(
      [...groups].map(async ([connection, group]) => {
        try {
          for (const [key, value] of await connection.getMulti(group)) found.set(key, value);
        } catch (error) {
          this.topology.noteFailure(connection, error);
          if (retriesLeft <= 0 || !isRetryable(error) || this.closed) throw error;
          await this.fetchMany(group, found, retriesLeft - 1);
        }
      }),
    );
  }

  private async skipOversize(key: string): Promise<void> {
    this.oversizeSkips++;
    await this.delete(key);
  }
}
