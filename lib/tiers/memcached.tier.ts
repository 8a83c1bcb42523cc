import type { Tier, TierWrite } from './tier.interface';
import type { MemcachedTierOptions } from './tier-options';
import { MemcachedConnection, MemcachedError } from './memcached/connection';
import { MAX_KEY_BYTES, Opcode, toMemcachedExpiry } from './memcached/protocol';
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

/** The servers and their connections, swapped as one by {@link MemcachedTier.setServers}. */
interface Topology {
  ring: HashRing;
  connections: Map<string, MemcachedConnection>;
}

/**
 * A memcached cluster as a cache tier.
 *
 * - One memjs client per server (`retries: 0`, silent), keys placed by a ketama consistent-hash
 *   ring, so adding one server to `n` remaps about `1/(n+1)` of the keys.
 * - `getMany` sends one pipelined batch per server (quiet gets and a NOOP in one write).
 * - A get/set/add/delete that fails with a connection error or a timeout is retried up to
 *   `retries` times on the server owning the key at retry time; `increment` never is.
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
  private topology: Topology;
  private closed = false;

  /**
   * @param options servers (validated: non-empty `host:port` list), `timeout` ms (default 500),
   *   `retries` (default 1), `maxValueBytes` (default 1 MiB − 1 KiB).
   * @param name name used in stats, logs and errors.
   * @throws TypeError on an invalid server list or option.
   */
  constructor(
    options: MemcachedTierOptions,
    readonly name = 'memcached',
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
    this.topology = this.buildTopology(options.servers, new Map());
  }

  /** The servers currently on the ring, `host:port`. */
  get servers(): readonly string[] {
    return this.topology.ring.servers;
  }

  /** The server (`host:port`) that owns `key` on the current ring. */
  serverFor(key: string): string {
    return this.topology.ring.serverFor(key);
  }

  /** Socket writes made per server since it joined the ring (one per request or pipeline). */
  writesPerServer(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [address, c] of this.topology.connections) out[address] = c.writes;
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
    this.topology = this.buildTopology(servers, previous.connections);
    for (const [address, connection] of previous.connections) {
      if (!this.topology.connections.has(address)) void connection.close();
    }
  }

  /**
   * Pings every server (NOOP). Resolves when at least one answers.
   *
   * @throws Error naming every server and its failure when none answers.
   */
  async connect(): Promise<void> {
    this.assertOpen();
    const connections = [...this.topology.connections.values()];
    const results = await Promise.allSettled(connections.map((c) => c.ping()));
    if (results.some((r) => r.status === 'fulfilled')) return;
    const reasons = results.map((r, i) => {
      const reason = r.status === 'rejected' ? describe(r.reason) : 'ok';
      return `${connections[i].address} (${reason})`;
    });
    throw new Error(`${this.name}: no memcached server is reachable: ${reasons.join(', ')}`);
  }

  /** The value at `key`, or `undefined` on a miss. Retried on connection errors and timeouts. */
  async get(key: string): Promise<Buffer | undefined> {
    checkKey(key);
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
    return this.connectionFor(key).increment(key, by, expiry);
  }

  /** Waits for requests in flight, then closes every socket; the tier is unusable afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.topology.connections.values()].map((c) => c.close()));
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
    return { ring: new HashRing(parsed.map((s) => s.address)), connections };
  }

  private connectionFor(key: string): MemcachedConnection {
    const { ring, connections } = this.topology;
    return connections.get(ring.serverFor(key))!;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`${this.name}: closed`);
  }

  /** Runs `op` on the key's owner, re-resolving the owner for each of up to `retries` retries. */
  private async withRetries<T>(
    key: string,
    op: (c: MemcachedConnection) => Promise<T>,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      this.assertOpen();
      try {
        return await op(this.connectionFor(key));
      } catch (error) {
        if (attempt >= this.retries || !isRetryable(error) || this.closed) throw error;
      }
    }
  }

  /** One pipelined batch per owning server; failed batches are regrouped and retried. */
  private async fetchMany(
    keys: readonly string[],
    found: Map<string, Buffer>,
    retriesLeft: number,
  ): Promise<void> {
    if (keys.length === 0) return;
    this.assertOpen();
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
  if (typeof key !== 'string' || key.length === 0 || Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new TypeError(`memcached key must be 1-${MAX_KEY_BYTES} bytes of UTF-8: ${String(key)}`);
  }
}

function option(value: number | undefined, fallback: number, what: string, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min) {
    throw new TypeError(`memcached ${what} must be an integer >= ${min}, got ${value}`);
  }
  return value;
}
