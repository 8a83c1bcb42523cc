import { systemClock, type Clock } from '../clock';
import { DiscoveryError, ElastiCacheDiscovery } from '../discovery/elasticache-discovery';
import type { Tier, TierWrite } from './tier.interface';
import type { MemcachedTierOptions } from './tier-options';
import { MemcachedConnection, MemcachedError } from './memcached/connection';
import { MAX_KEY_BYTES, Opcode, Status, toMemcachedExpiry } from './memcached/protocol';
import { HashRing } from './memcached/ring';
import { parseServers } from './memcached/servers';

export { toMemcachedExpiry } from './memcached/protocol';
export { MemcachedError } from './memcached/connection';

/** Default per-operation timeout, ms. */
export const DEFAULT_MEMCACHED_TIMEOUT_MS = 500;
/** Default number of retries of a failed get/set/add/delete. */
export const DEFAULT_MEMCACHED_RETRIES = 1;
/** Default largest value stored: memcached's 1 MiB item limit minus 1 KiB for key and header. */
export const DEFAULT_MEMCACHED_MAX_VALUE_BYTES = 1024 * 1024 - 1024;
/** Default time a server that failed with a connection error stays off the ring, ms. */
export const DEFAULT_MEMCACHED_FAILOVER_TIME_MS = 30_000;

/** The servers and their connections, swapped as one by {@link MemcachedTier.setServers}. */
interface Topology {
  connections: Map<string, MemcachedConnection>;
  /** The ring over every server configured or discovered, failed ones included. */
  full: HashRing;
  /**
   * The ring keys are placed on: `full`'s servers minus the failed ones, or {@link full} when none
   * failed or all did (with no live server left, the tier keeps trying all of them).
   */
  ring: HashRing;
}

/**
 * A memcached cluster as a cache tier.
 *
 * - One memjs client per server (`retries: 0`, silent), keys placed by a ketama consistent-hash
 *   ring, so adding one server to `n` remaps about `1/(n+1)` of the keys.
 * - `getMany` sends one pipelined batch per server (quiet gets and a NOOP in one write).
 * - A get/set/add/delete that fails with a connection error or a timeout is retried up to
 *   `retries` times on the server owning the key at retry time; `increment` never is.
 * - Failover: a server whose request fails with a connection error (refused, reset, closed,
 *   connect timeout; not a timeout of a connected server, not an error status) leaves the ring
 *   for `failoverTime` ms, so the retry, and every later request for its keys, goes to the server
 *   that now owns the key. Once `failoverTime` has passed, the next request triggers a NOOP probe
 *   in the background: the server rejoins the ring when it answers, else stays out another
 *   `failoverTime`.
 * - With `discovery`, the node list comes from an ElastiCache configuration endpoint, polled every
 *   `intervalMs` and right after connection errors (see {@link ElastiCacheDiscovery}).
 * - Every attempt is bounded by `timeout` (connecting included); failures reject, misses resolve
 *   `undefined`.
 */
export class MemcachedTier implements Tier<Buffer> {
  /** Always `memcached`. */
  readonly kind = 'memcached' as const;
  /** Writes skipped (and older values deleted) because the value exceeded `maxValueBytes`. */
  oversizeSkips = 0;

  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly maxValueBytes: number;
  private readonly failoverMs: number;
  /** Undefined until the first discovery when the node list comes from `discovery`. */
  private topology: Topology | undefined;
  /** Failed servers and when they may be probed (clock ms). */
  private readonly failed = new Map<string, number>();
  private probing: Promise<void> | undefined;
  private readonly discovery: ElastiCacheDiscovery | undefined;
  private discovering: Promise<void> | undefined;
  private closed = false;

  /**
   * @param options `servers` (validated: non-empty `host:port` list) or `discovery`, `timeout` ms
   *   (default 500), `retries` (default 1), `maxValueBytes` (default 1 MiB − 1 KiB),
   *   `failoverTime` ms (default 30000, 0 = off).
   * @param name name used in stats, logs and errors.
   * @param clock time source of `failoverTime` (tests inject a manual one).
   * @throws TypeError on an invalid server list or option, or unless exactly one of `servers` and
   *   `discovery` is given.
   */
  constructor(
    options: MemcachedTierOptions,
    readonly name = 'memcached',
    private readonly clock: Clock = systemClock,
  ) {
    this.timeoutMs = options.timeout ?? DEFAULT_MEMCACHED_TIMEOUT_MS;
    if (!Number.isFinite(this.timeoutMs) || this.timeoutMs <= 0) {
      throw new TypeError(
        `memcached timeout must be a positive number of ms, got ${options.timeout}`,
      );
    }
    this.retries = option(options.retries, DEFAULT_MEMCACHED_RETRIES, 'retries', 0);
    this.maxValueBytes = option(
      options.maxValueBytes,
      DEFAULT_MEMCACHED_MAX_VALUE_BYTES,
      'maxValueBytes',
      1,
    );
    this.failoverMs = option(
      options.failoverTime,
      DEFAULT_MEMCACHED_FAILOVER_TIME_MS,
      'failoverTime',
      0,
    );
    const hasServers = options.servers !== undefined;
    const hasDiscovery = options.discovery !== undefined;
    if (hasServers === hasDiscovery) {
      throw new TypeError(
        hasServers
          ? 'memcached discovery: not allowed together with "servers" (set either, not both)'
          : 'memcached servers: required (a "host:port" list), unless "discovery" ({ endpoint: "host:port" }) is set',
      );
    }
    if (options.discovery !== undefined) {
      this.discovery = new ElastiCacheDiscovery(
        options.discovery,
        (servers) => this.setServers(servers),
        'memcached discovery',
      );
    } else {
      this.topology = this.buildTopology(options.servers, new Map());
    }
  }

  /**
   * The servers keys are placed on, `host:port`: every known server except failed ones (all of
   * them when every one failed). Empty before the first discovery.
   */
  get servers(): readonly string[] {
    return this.topology?.ring.servers ?? [];
  }

  /** Servers taken off the ring after a connection error, until a probe finds them answering. */
  get failedServers(): readonly string[] {
    return [...this.failed.keys()];
  }

  /** Version of the discovered configuration in use (-1: the endpoint alone); `undefined` without discovery. */
  get configVersion(): number | undefined {
    return this.discovery?.version;
  }

  /** The discovery poller, when the node list comes from `discovery` (for stats and tests). */
  get clusterDiscovery(): ElastiCacheDiscovery | undefined {
    return this.discovery;
  }

  /**
   * The server (`host:port`) that owns `key` on the current ring.
   *
   * @throws Error before the first discovery.
   */
  serverFor(key: string): string {
    return this.current().ring.serverFor(key);
  }

  /** Socket writes made per server since it joined the ring (one per request or pipeline). */
  writesPerServer(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [address, c] of this.topology?.connections ?? []) out[address] = c.writes;
    return out;
  }

  /**
   * Replaces the server list: servers already known keep their connection, new ones get one,
   * removed ones are closed once their requests in flight have settled. Requests already sent
   * complete on the server they were sent to; retries and new requests use the new ring.
   *
   * @throws TypeError on an invalid list (the current ring is then kept).
   */
  setServers(servers: string[]): void {
    if (this.closed) throw new Error(`${this.name}: closed`);
    const previous = this.topology;
    const next = this.buildTopology(servers, previous?.connections ?? new Map());
    // Failed servers still listed stay failed; removed ones are forgotten.
    for (const address of this.failed.keys()) {
      if (!next.connections.has(address)) this.failed.delete(address);
    }
    this.topology = this.withLiveRing(next);
    for (const [address, connection] of previous?.connections ?? []) {
      if (!next.connections.has(address)) void connection.close();
    }
  }

  /**
   * With `discovery`, runs the first discovery (once; again after a failure). Then pings every
   * server (NOOP); a server that cannot be reached leaves the ring (see `failoverTime`). Resolves
   * when at least one answers.
   *
   * @throws DiscoveryError naming the endpoint when the first discovery fails without
   *   `discovery.ignoreErrors`.
   * @throws Error naming every server and its failure when none answers.
   */
  async connect(): Promise<void> {
    this.assertOpen();
    if (this.discovery && this.topology === undefined) {
      this.discovering ??= this.discover().finally(() => (this.discovering = undefined));
      await this.discovering;
    }
    const connections = [...this.current().connections.values()];
    const results = await Promise.allSettled(connections.map((c) => c.ping()));
    results.forEach((r, i) => {
      if (r.status === 'rejected') this.noteFailure(connections[i], r.reason);
    });
    if (results.some((r) => r.status === 'fulfilled')) return;
    const reasons = results.map((r, i) => {
      const reason = r.status === 'rejected' ? describe(r.reason) : 'ok';
      return `${connections[i].address} (${reason})`;
    });
    throw new Error(`${this.name}: no memcached server is reachable: ${reasons.join(', ')}`);
  }

  /** The value at `key`, or `undefined` on a miss. Retried on connection errors and timeouts. */
  get(key: string): Promise<Buffer | undefined> {
    // Not `async`: one promise fewer on every memcached hit.
    try {
      checkKey(key);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.withRetries(key, (c) => c.get(key));
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
    await this.fetchMany([...new Set(keys)], found, this.retries);
    return keys.map((key) => found.get(key));
  }

  /**
   * Stores `value` for `ttlMs` (0: no expiry). A value larger than `maxValueBytes` is not stored:
   * any older value at `key` is deleted instead (so it is never served after this newer write),
   * {@link oversizeSkips} is incremented and the call resolves normally.
   */
  async set(key: string, value: Buffer, ttlMs: number): Promise<void> {
    checkKey(key);
    const expiry = toMemcachedExpiry(ttlMs);
    if (value.length > this.maxValueBytes) return this.skipOversize(key);
    const outcome = await this.withRetries(key, (c) => c.store(Opcode.Set, key, value, expiry));
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
    const expiry = toMemcachedExpiry(ttlMs);
    if (value.length > this.maxValueBytes) {
      await this.skipOversize(key);
      return false;
    }
    const outcome = await this.withRetries(key, (c) => c.store(Opcode.Add, key, value, expiry));
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
    if (this.topology === undefined) await this.connect();
    const connection = this.connectionFor(key);
    try {
      const found = await connection.getWithCas(key);
      if (found === undefined || !found.value.equals(expected)) return false;
      return await connection.deleteIfUnchanged(key, found.cas);
    } catch (error) {
      this.noteFailure(connection, error);
      throw error;
    }
  }

  /** Deletes `key`; a missing key is fine. Retried on connection errors and timeouts. */
  async delete(key: string): Promise<void> {
    checkKey(key);
    return this.withRetries(key, (c) => c.delete(key));
  }

  /** {@link delete} of every key, concurrently; rejects with the first failure once all settle. */
  async deleteMany(keys: readonly string[]): Promise<void> {
    await settleAll([...new Set(keys)].map((key) => this.delete(key)));
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
    const expiry = toMemcachedExpiry(ttlMs);
    this.assertOpen();
    if (this.topology === undefined) await this.connect();
    for (let attempt = 0; ; attempt++) {
      const connection = this.connectionFor(key);
      try {
        return await connection.increment(key, by, expiry);
      } catch (error) {
        // The server leaves the ring for the next call, but this one is not sent again: its
        // answer may have been lost after the server counted it.
        this.noteFailure(connection, error);
        // Except NOT_STORED: two first increments of an absent counter raced and memcached's
        // internal ADD of the initial value lost. Nothing was counted, so sending again is safe.
        const raced = error instanceof MemcachedError && error.status === Status.NotStored;
        if (!raced || attempt >= 2 || this.closed) throw error;
      }
    }
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
    await this.probing;
    await Promise.all([...(this.topology?.connections.values() ?? [])].map((c) => c.close()));
  }

  /** First discovery; failures are renamed after this tier and name the endpoint. */
  private async discover(): Promise<void> {
    try {
      await this.discovery!.start();
    } catch (error) {
      if (error instanceof DiscoveryError) {
        throw new DiscoveryError(
          `${this.name}: ${error.message}`,
          error.endpoint,
          error.notElastiCache,
          { cause: error.cause },
        );
      }
      throw error;
    }
  }

  private current(): Topology {
    if (this.topology === undefined) {
      throw new Error(`${this.name}: no servers yet: connect() runs the first discovery`);
    }
    return this.topology;
  }

  /** `topology` with its live ring rebuilt from {@link failed}. */
  private withLiveRing(topology: Topology): Topology {
    const all = topology.full.servers;
    const live = all.filter((address) => !this.failed.has(address));
    const ring =
      live.length === all.length || live.length === 0 ? topology.full : new HashRing(live);
    return { ...topology, ring };
  }

  /**
   * Takes the server of `connection` off the ring after a connection error (not a timeout of a
   * connected server, nor an error status), and asks discovery to look for a new node list.
   */
  private noteFailure(connection: MemcachedConnection, error: unknown): void {
    if (!(error instanceof MemcachedError) || error.kind !== 'connection' || this.closed) return;
    this.discovery?.requestRefresh();
    const topology = this.topology;
    const address = connection.address;
    if (this.failoverMs === 0 || topology === undefined) return;
    // A connection of a server already removed, or a server already out: nothing to do.
    if (topology.connections.get(address) !== connection || this.failed.has(address)) return;
    this.failed.set(address, this.clock.now() + this.failoverMs);
    this.topology = this.withLiveRing(topology);
  }

  /**
   * Probes now (NOOP) the failed servers whose `failoverTime` has passed, as the next request would
   * in the background, and resolves when done: those that answer are back on the ring, the others
   * stay off for another `failoverTime`. Joins a probe already running.
   */
  async probeFailedServers(): Promise<void> {
    this.maybeProbe();
    await this.probing;
  }

  /** Starts a background probe of the failed servers whose `failoverTime` has passed. */
  private maybeProbe(): void {
    if (this.failed.size === 0 || this.probing !== undefined || this.closed) return;
    const now = this.clock.now();
    let due = false;
    for (const at of this.failed.values()) if (at <= now) due = true;
    if (!due) return;
    this.probing = this.probe(now).finally(() => (this.probing = undefined));
  }

  private async probe(now: number): Promise<void> {
    const due = [...this.failed].filter(([, at]) => at <= now).map(([address]) => address);
    await Promise.all(
      due.map(async (address) => {
        const connection = this.topology?.connections.get(address);
        if (connection === undefined) return void this.failed.delete(address);
        try {
          await connection.ping();
          if (this.topology?.connections.get(address) === connection) this.failed.delete(address);
        } catch {
          if (this.failed.has(address)) {
            this.failed.set(address, this.clock.now() + this.failoverMs);
          }
        }
      }),
    );
    if (this.topology !== undefined && !this.closed) {
      this.topology = this.withLiveRing(this.topology);
    }
  }

  private buildTopology(servers: unknown, reuse: Map<string, MemcachedConnection>): Topology {
    const parsed = parseServers(servers, `${this.name} servers`);
    const connections = new Map<string, MemcachedConnection>();
    for (const server of parsed) {
      connections.set(
        server.address,
        reuse.get(server.address) ?? new MemcachedConnection(server, { timeoutMs: this.timeoutMs }),
      );
    }
    const full = new HashRing(parsed.map((s) => s.address));
    return { connections, full, ring: full };
  }

  private connectionFor(key: string): MemcachedConnection {
    this.maybeProbe();
    const { ring, connections } = this.current();
    return connections.get(ring.serverFor(key))!;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`${this.name}: closed`);
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
    if (this.closed) return Promise.reject(new Error(`${this.name}: closed`));
    if (this.topology === undefined)
      return this.connect().then(() => this.withRetries(key, op, attempt));
    // Promise chaining rather than an async function: this sits on every memcached hit, and the
    // common case (one attempt on a known ring) then costs no extra promise.
    const connection = this.connectionFor(key);
    return op(connection).catch((error: unknown) => {
      this.noteFailure(connection, error);
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
    if (this.topology === undefined) await this.connect();
    const groups = new Map<MemcachedConnection, string[]>();
    for (const key of keys) {
      const connection = this.connectionFor(key);
      const group = groups.get(connection);
      if (group) group.push(key);
      else groups.set(connection, [key]);
    }
    await settleAll(
      [...groups].map(async ([connection, group]) => {
        try {
          for (const [key, value] of await connection.getMulti(group)) found.set(key, value);
        } catch (error) {
          this.noteFailure(connection, error);
          if (retriesLeft <= 0 || !isRetryable(error) || this.closed) throw error;
          await this.fetchMany(group, found, retriesLeft - 1);
        }
      }),
    );
  }

  private async skipOversize(key: string): Promise<void> {
    this.oversizeSkips++;
    await this.withRetries(key, (c) => c.delete(key));
  }
}

function isRetryable(error: unknown): boolean {
  return error instanceof MemcachedError && error.retryable;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Awaits every promise, then rethrows the first rejection (so no work is left running). */
async function settleAll(promises: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw badKey(key);
  // Up to 83 UTF-16 units are at most 249 bytes: only longer keys need counting.
  if (key.length > MAX_KEY_BYTES / 3 && Buffer.byteLength(key) > MAX_KEY_BYTES) throw badKey(key);
}

function badKey(key: string): TypeError {
  return new TypeError(`memcached key must be 1-${MAX_KEY_BYTES} bytes of UTF-8: ${String(key)}`);
}

function option(value: number | undefined, fallback: number, what: string, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min) {
    throw new TypeError(`memcached ${what} must be an integer >= ${min}, got ${value}`);
  }
  return value;
}
