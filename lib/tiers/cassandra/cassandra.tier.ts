import { Client, types, type QueryOptions } from 'cassandra-driver';
import { TieredCacheError, ValueTooLargeError } from '../../errors';
import { checkRaised } from '../max-register';
import type { Tier, TierCapabilities, TierWrite } from '../tier.interface';
import type { TierContext } from '../tier-options';
import {
  resolveCassandraOptions,
  type CassandraTierOptions,
  type ResolvedCassandraOptions,
} from './cassandra.options';
import {
  NEVER_RETRY,
  clientOptions,
  describeConnectError,
  asTimeoutError,
  mapBounded,
  releaseClient,
} from './driver';
import {
  cassandraStatements,
  checkSchema,
  createSchema,
  type CassandraSchema,
  type CassandraStatements,
} from './statements';
import { raiseWrite, WriteClock } from './timestamps';
import { toCassandraTtl } from './ttl';

const CAPABILITIES: TierCapabilities = Object.freeze({
  local: false,
  leases: 'consensus',
  counters: 'additive',
  enumerate: true,
  ttlResolutionMs: 1000,
  maxKeyBytes: 65535,
});

/** Rows per page of {@link CassandraTier.entries}. */
const SCAN_PAGE_ROWS = 1000;

/**
 * A Cassandra (or ScyllaDB) tier, over cassandra-driver.
 *
 * Schema (created by {@link connect} unless `createSchema` is false):
 * ```cql
 * CREATE TABLE <keyspace>.<table> (k text PRIMARY KEY, v blob);
 * CREATE TABLE <keyspace>.<table>_counters (k text PRIMARY KEY, c counter);
 * ```
 * Every data statement is prepared and runs at the configured consistency, with the configured
 * per-request timeout. Values expire with `USING TTL` (whole seconds, rounded up; see
 * {@link toCassandraTtl}). Counters live in their own table and never expire: Cassandra counters
 * cannot have a TTL.
 */
export class CassandraTier implements Tier<Buffer> {
  /** Always `cassandra`. */
  readonly kind = 'cassandra';
  /**
   * Remote; leases by lightweight transaction (Paxos); counters; lists its entries (a full table
   * scan, see {@link entries}); TTLs in whole seconds; keys up to 65535 bytes (a CQL `text`
   * partition key).
   */
  readonly capabilities: TierCapabilities;
  /** Name used in stats, logs and error events. */
  readonly name: string;

  private readonly options: ResolvedCassandraOptions;
  private readonly statements: CassandraStatements;
  private readonly consistency: number;
  private readonly serialConsistency: number;
  private client: Client | undefined;
  private connecting: Promise<void> | undefined;
  private connected = false;
  private closed = false;
  /** The write timestamps of `set` and `delete`. */
  private readonly clock = new WriteClock();
  /** Counter resets in flight per key, so concurrent deletes of one key subtract once. */
  private readonly resets = new Map<string, Promise<boolean>>();

  /**
   * Validates the options; opens nothing (see {@link connect}).
   * @param options the tier options; see {@link CassandraTierOptions} for defaults.
   * @param context `name` (default: the `name` option, else `cassandra`) and `path`, where the
   *   options sit for error messages (default `cassandra`; `tiers[2]` when the store builds it).
   * @throws InvalidOptionError naming the option by its path and the accepted values.
   */
  constructor(options: CassandraTierOptions, context: TierContext = {}) {
    this.options = resolveCassandraOptions(options, context.path ?? 'cassandra');
    this.name = context.name ?? options.name ?? 'cassandra';
    const { keyspace, table, consistency } = this.options;
    this.capabilities = Object.freeze({
      ...CAPABILITIES,
      maxValueBytes: this.options.maxValueBytes,
    });
    this.statements = cassandraStatements(keyspace, table);
    this.consistency = types.consistencies[consistency];
    this.serialConsistency = consistency.startsWith('local')
      ? types.consistencies.localSerial
      : types.consistencies.serial;
  }

  /** The contact points as `host:port`, for messages. */
  get contactPoints(): string[] {
    return [...this.options.contactPoints];
  }

  /** The keyspace in use (lowercased, as Cassandra stores unquoted identifiers). */
  get keyspace(): string {
    return this.options.keyspace;
  }

  /** The value table in use (lowercased); the counter table is this name plus `_counters`. */
  get table(): string {
    return this.options.table;
  }

  /**
   * Connects the driver, then creates the keyspace and both tables when `createSchema` is true
   * (`IF NOT EXISTS`: safe from several instances at once), or checks that they exist when it is
   * false. Calling it again while connected does nothing; after a failure it may be called again.
   * @throws TieredCacheError `E_UNREACHABLE` naming the contact points when no node can be
   *   reached, `E_SCHEMA` naming the missing keyspace or table, `E_CLOSED` after {@link close}.
   */
  connect(): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError());
    this.connecting ??= this.open().catch((err: unknown) => {
      this.connecting = undefined;
      throw err;
    });
    return this.connecting;
  }

  private async open(): Promise<void> {
    const o = this.options;
    const client = new Client(clientOptions(o, this.consistency));
    this.client = client;
    try {
      await client.connect();
    } catch (err) {
      this.client = undefined;
      await releaseClient(client);
      throw new TieredCacheError(
        'E_UNREACHABLE',
        `cassandra tier "${this.name}": cannot connect to ${o.contactPoints.join(', ')} ` +
          `(local data center "${o.localDataCenter}"): ${describeConnectError(err)}`,
        { cause: err },
      );
    }
    try {
      const schema: CassandraSchema = { name: this.name, ...o };
      if (o.createSchema) await createSchema(client, schema, this.consistency);
      else await checkSchema(client, schema);
    } catch (err) {
      this.client = undefined;
      await releaseClient(client);
      throw err;
    }
    if (this.closed) {
      // close() ran while we were connecting.
      this.client = undefined;
      await releaseClient(client);
      throw this.closedError();
    }
    this.connected = true;
  }

  /** @returns the value stored at `key`, or `undefined` when absent or expired. */
  async get(key: string): Promise<Buffer | undefined> {
    const rs = await this.execute('get', this.statements.select, [key], true);
    const v: unknown = rs.first()?.get('v');
    return Buffer.isBuffer(v) ? v : undefined;
  }

  /**
   * One prepared single-partition select per distinct key, run concurrently (the driver pipelines
   * them on its connections; cassandra-driver recommends this over `IN` across partitions).
   * @returns the values in the order of `keys` (repeated keys get the same value).
   */
  async getMany(keys: readonly string[]): Promise<(Buffer | undefined)[]> {
    const unique = [...new Set(keys)];
    const values = await mapBounded(unique, (k) => this.get(k));
    const byKey = new Map(unique.map((k, i) => [k, values[i]]));
    return keys.map((k) => byKey.get(k));
  }

  /**
   * Stores `value` at `key` (`INSERT ... USING TTL`); `ttlMs` 0 stores without expiry.
   * See {@link toCassandraTtl} for rounding and caps.
   * @throws ValueTooLargeError (sending nothing) when `value` is over `maxValueBytes`.
   */
  async set(key: string, value: Buffer, ttlMs: number): Promise<void> {
    const ttl = toCassandraTtl(ttlMs);
    this.checkSize(key, value);
    const at = this.clock.next();
    if (ttl === undefined)
      await this.execute('set', this.statements.insert, [key, value], true, at);
    else await this.execute('set', this.statements.insertTtl, [key, value, ttl], true, at);
  }

  /**
   * Concurrent {@link set}s; rejects with the first failure. Values over `maxValueBytes` are not
   * sent: the others are stored, then it rejects with the first one's `ValueTooLargeError`.
   */
  async setMany(entries: readonly TierWrite<Buffer>[]): Promise<void> {
    let tooLarge: unknown;
    await mapBounded(entries, (e) =>
      this.set(e.key, e.value, e.ttlMs).catch((err: unknown) => {
        if (!(err instanceof ValueTooLargeError)) throw err;
        tooLarge ??= err;
      }),
    );
    if (tooLarge !== undefined) throw tooLarge;
  }

  /**
   * Stores `value` only when `key` holds no live value: a lightweight transaction
   * (`INSERT ... IF NOT EXISTS`, Paxos at serial or local serial consistency), never retried.
   * @returns true when this call stored the value.
   * @throws ValueTooLargeError (sending nothing) when `value` is over `maxValueBytes`.
   */
  async add(key: string, value: Buffer, ttlMs: number): Promise<boolean> {
    const ttl = toCassandraTtl(ttlMs);
    this.checkSize(key, value);
    const rs =
      ttl === undefined
        ? await this.execute('add', this.statements.insertIfNotExists, [key, value], false)
        : await this.execute('add', this.statements.insertIfNotExistsTtl, [key, value, ttl], false);
    return rs.first()?.get('[applied]') === true;
  }

  /**
   * Compare-and-delete as a lightweight transaction (`DELETE ... IF v = ?`), never retried.
   * Leaves the counter alone (leases, its one user, have none).
   * @returns true when this call deleted the row.
   */
  async deleteIf(key: string, expected: Buffer): Promise<boolean> {
    const rs = await this.execute('deleteIf', this.statements.deleteIf, [key, expected], false);
    return rs.first()?.get('[applied]') === true;
  }

  /**
   * Removes the value at `key` and resets its counter (see {@link increment}); both run
   * concurrently.
   *
   * Whether something was deleted comes from reading the row before deleting it (not from a
   * lightweight `DELETE ... IF EXISTS`: mixing those with the plain writes of the same partition
   * is unsafe), so it is exact only without concurrent writers of the key: two concurrent deletes
   * may both resolve true.
   *
   * The counter is reset by subtracting its current value, not deleted: Cassandra cannot
   * re-create a deleted counter (every later increment of it is lost until its tombstone is
   * purged, `gc_grace_seconds` after, 10 days by default). Increments concurrent with the reset
   * are kept. Concurrent deletes of one key from one tier subtract once; from different processes
   * they may subtract twice (the counter then goes below zero).
   *
   * @returns true when `key` held a value or a non-zero counter.
   */
  async delete(key: string): Promise<boolean> {
    const at = this.clock.next();
    const [row, counter] = await Promise.all([this.deleteRow(key, at), this.resetCounter(key)]);
    return row || counter;
  }

  /**
   * Concurrent {@link delete}s of the distinct keys; rejects with the first failure.
   * @returns true when any of them held a value or a non-zero counter.
   */
  async deleteMany(keys: readonly string[]): Promise<boolean> {
    const deleted = await mapBounded([...new Set(keys)], (k) => this.delete(k));
    return deleted.includes(true);
  }

  /**
   * Adds `by` (a safe integer, may be negative) to the counter at `key`, creating it at `by`,
   * with `UPDATE <table>_counters SET c = c + ?`, then reads the counter back.
   *
   * - Never retried by the driver (`isIdempotent: false` and a fall-through retry policy): on a
   *   timeout the increment may or may not have been applied, and the promise rejects.
   * - `ttlMs` is ignored: Cassandra counters cannot expire. Counters stay until deleted.
   * - `by` 0 only reads the counter (a plain, retryable `SELECT`; 0 when it does not exist): the
   *   store reads the namespace generation this way.
   * - The read-back is a separate statement: with concurrent increments of the same key the
   *   result may include increments made after this one (the final total is always exact).
   * - The counter is a 64-bit integer; beyond ±2^53 the returned number loses precision.
   *
   * @throws RangeError when `by` is not a safe integer; TieredCacheError `E_TIER_FAILED` when the
   *   counter cannot be read back.
   */
  async increment(key: string, by: number, _ttlMs: number): Promise<number> {
    if (!Number.isSafeInteger(by)) {
      throw new RangeError(`cassandra increment: by must be a safe integer, got ${String(by)}`);
    }
    // By 0: a read. Not an update, which Cassandra sends through a replica's counter leader: while
    // a dead replica is not yet known as dead, about half of such updates wait for it and time out.
    if (by === 0) return (await this.readCounter('increment', key))?.toNumber() ?? 0;
    await this.execute(
      'increment',
      this.statements.increment,
      [types.Long.fromNumber(by), key],
      false,
    );
    const value = await this.readCounter('increment', key);
    if (value === undefined) {
      throw new TieredCacheError(
        'E_TIER_FAILED',
        `cassandra tier "${this.name}": counter "${key}" was not found after incrementing it ` +
          `(was its row deleted outside this tier?)`,
      );
    }
    return value.toNumber();
  }

  /**
   * Max-register (see `Tier.raise`): `INSERT ... USING TIMESTAMP n [AND TTL]`, Cassandra keeping
   * the highest timestamp (see {@link raiseWrite}, and what it says of TTLs). Keys written by
   * `raise` must be written by nothing else: `set` and `delete` of them may be ignored.
   * Idempotent: the driver may retry it.
   * @throws RangeError when `n` is not a non-negative safe integer or `ttlMs` is invalid.
   */
  async raise(key: string, n: number, ttlMs: number): Promise<void> {
    checkRaised(`cassandra tier "${this.name}"`, n);
    const { query, params } = raiseWrite(this.statements, key, n, toCassandraTtl(ttlMs));
    await this.execute('raise', query, params, true);
  }

  /**
   * The value rows whose key starts with `prefix`, read with `SELECT k, v` page by page
   * ({@value SCAN_PAGE_ROWS} rows a page, the driver's `fetchSize` and `pageState`; the next page
   * is asked for when this one has been consumed), each page at the configured consistency and
   * timeout. Counters are not listed (they live in their own table).
   *
   * This is a **full table scan**: the partition key cannot be searched by prefix and there is no
   * secondary index, so every row of the table is read and filtered here, whoever wrote it. It is
   * made for tools and maintenance (listing, exporting, warming), never for a hot path. Rows
   * written or deleted while it runs may or may not be listed; expired ones never are.
   */
  async *entries(prefix: string): AsyncGenerator<[key: string, value: Buffer]> {
    let pageState: string | undefined;
    do {
      const rs = await this.execute('entries', this.statements.scan, [], true, undefined, {
        fetchSize: SCAN_PAGE_ROWS,
        pageState,
      });
      for (const row of rs.rows) {
        const k: unknown = row.get('k');
        const v: unknown = row.get('v');
        if (typeof k === 'string' && k.startsWith(prefix) && Buffer.isBuffer(v)) yield [k, v];
      }
      pageState = rs.pageState ?? undefined;
    } while (pageState !== undefined);
  }

  /** Shuts the driver down (sockets and timers); the tier is unusable afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    this.connected = false;
    const client = this.client;
    this.client = undefined;
    if (client) await releaseClient(client);
    // A connect still under way (a node that hangs) goes on arming the driver's timers, host
    // health checks and pool reconnections, until it settles; `open` then releases the client
    // again. Closed means nothing is left: wait for it (the driver's own timeouts bound it).
    await this.connecting?.catch(() => undefined);
  }

  /** Deletes the value row; resolves whether it existed just before. */
  private async deleteRow(key: string, at: types.Long): Promise<boolean> {
    const rs = await this.execute('delete', this.statements.exists, [key], true);
    await this.execute('delete', this.statements.delete, [key], true, at);
    return rs.rowLength > 0;
  }

  private async readCounter(op: string, key: string): Promise<types.Long | undefined> {
    const rs = await this.execute(op, this.statements.selectCounter, [key], true);
    const c: unknown = rs.first()?.get('c');
    return c instanceof types.Long ? c : undefined;
  }

  /** Subtracts the counter's current value; resolves whether it was non-zero. */
  private resetCounter(key: string): Promise<boolean> {
    let pending = this.resets.get(key);
    if (!pending) {
      pending = (async () => {
        const current = await this.readCounter('delete', key);
        if (!current || current.isZero()) return false;
        await this.execute('delete', this.statements.increment, [current.negate(), key], false);
        return true;
      })().finally(() => this.resets.delete(key));
      this.resets.set(key, pending);
    }
    return pending;
  }

  /**
   * Runs a prepared data statement at the configured consistency and timeout, with a write
   * timestamp or one page's `fetchSize` and `pageState` when given. Non-idempotent statements
   * (counter updates, lightweight transactions) are never retried.
   */
  private execute(
    op: string,
    query: string,
    params: unknown[],
    idempotent: boolean,
    timestamp?: types.Long,
    paging?: Pick<QueryOptions, 'fetchSize' | 'pageState'>,
  ) {
    const client = this.client;
    if (!client || !this.connected) {
      return Promise.reject(this.closed ? this.closedError() : this.notConnectedError());
    }
    const options: QueryOptions = {
      prepare: true,
      consistency: this.consistency,
      serialConsistency: this.serialConsistency,
      readTimeout: this.options.timeout,
      isIdempotent: idempotent,
    };
    if (!idempotent) options.retry = NEVER_RETRY;
    if (timestamp !== undefined) options.timestamp = timestamp;
    if (paging !== undefined) Object.assign(options, paging);
    return client.execute(query, params, options).catch((err: unknown) => {
      throw asTimeoutError(err, `cassandra tier "${this.name}": ${op}`, this.options.timeout);
    });
  }

  /** @throws ValueTooLargeError when `value` is over `maxValueBytes`. */
  private checkSize(key: string, value: Buffer): void {
    const limit = this.options.maxValueBytes;
    if (value.length > limit)
      throw new ValueTooLargeError(
        `cassandra tier "${this.name}": the value of ${JSON.stringify(key)} is ${value.length} ` +
          `bytes, over maxValueBytes (${limit})`,
        value.length,
        limit,
      );
  }

  private notConnectedError(): TieredCacheError {
    return new TieredCacheError(
      'E_NOT_CONNECTED',
      `cassandra tier "${this.name}" is not connected: call connect() first`,
    );
  }

  private closedError(): TieredCacheError {
    return new TieredCacheError('E_CLOSED', `cassandra tier "${this.name}" is closed`);
  }
}
