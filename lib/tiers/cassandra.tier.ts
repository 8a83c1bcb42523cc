import { isIP } from 'node:net';
import { Client, policies, types, type ClientOptions, type QueryOptions } from 'cassandra-driver';
import type { CassandraTierOptions } from './tier-options';
import type { Tier, TierKind, TierWrite } from './tier.interface';

/** Cassandra's largest accepted TTL: 20 years, in seconds. */
export const CASSANDRA_MAX_TTL_SECONDS = 630_720_000;

/**
 * The last expiration instant older Cassandra versions can store (2038-01-19T03:14:07Z, the
 * largest signed 32-bit epoch second). Cassandra 2.1 to 4.0 store a cell's expiration as
 * `now + ttl` in that type: on 2.1.0 a later expiration overflows and the write is silently lost
 * (checked against the test server), newer 3.x/4.0 releases reject it (CASSANDRA-14092).
 */
export const CASSANDRA_MAX_EXPIRATION_EPOCH_SECONDS = 2_147_483_647;

/** Kept between the expiration we ask for and the 2038 limit, for clock skew with the servers. */
const EXPIRATION_MARGIN_SECONDS = 86_400;

/** Default port of the CQL native protocol. */
export const CASSANDRA_DEFAULT_PORT = 9042;

/** CQL identifier accepted for `keyspace` and `table` (unquoted: case-insensitive). */
const CQL_IDENTIFIER = /^[A-Za-z][A-Za-z0-9_]{0,47}$/;
const IDENTIFIER_RULE = 'letters, digits and _, starting with a letter, at most 48';
const COUNTER_SUFFIX = '_counters';
/** Cassandra limits table names to 48 characters and the counter table adds `_counters`. */
const MAX_TABLE_LENGTH = 48 - COUNTER_SUFFIX.length;

const CONSISTENCIES = [
  'one',
  'localOne',
  'quorum',
  'localQuorum',
  'all',
  'eachQuorum',
  'two',
  'three',
] as const;
type ConsistencyName = (typeof CONSISTENCIES)[number];

/** Statements of one bulk call in flight at once (the driver allows 2048 per connection). */
const BULK_CONCURRENCY = 256;

/** Longest connect attempt per contact point, in ms. */
const MAX_CONNECT_TIMEOUT_MS = 5000;

/**
 * Converts a tier TTL in milliseconds to a Cassandra `USING TTL` value in whole seconds.
 *
 * - `0` means no expiry: returns `undefined` (write without `USING TTL`).
 * - Otherwise rounds up (1 ms gives 1 s, 1500 ms gives 2 s), so an entry never lives shorter
 *   than asked.
 * - Caps at {@link CASSANDRA_MAX_TTL_SECONDS} (20 years; `Infinity` is capped too) and so that
 *   the expiration stays a day before {@link CASSANDRA_MAX_EXPIRATION_EPOCH_SECONDS} (2038),
 *   which older servers cannot store. From late 2026 that second cap (about 11 years) is the
 *   lower one.
 *
 * @param ttlMs time to live in milliseconds, `>= 0`.
 * @param nowMs the current time, injectable for tests. Default `Date.now()`.
 * @throws RangeError when `ttlMs` is negative or NaN.
 */
export function toCassandraTtl(ttlMs: number, nowMs: number = Date.now()): number | undefined {
  if (typeof ttlMs !== 'number' || Number.isNaN(ttlMs) || ttlMs < 0) {
    throw new RangeError(`cassandra ttl: ${String(ttlMs)} ms is not a number >= 0 (0: no expiry)`);
  }
  if (ttlMs === 0) return undefined;
  const untilLimit =
    CASSANDRA_MAX_EXPIRATION_EPOCH_SECONDS - Math.floor(nowMs / 1000) - EXPIRATION_MARGIN_SECONDS;
  const cap = Math.max(1, Math.min(CASSANDRA_MAX_TTL_SECONDS, untilLimit));
  return ttlMs >= cap * 1000 ? cap : Math.ceil(ttlMs / 1000);
}

/** A contact point split into host and port. */
export interface CassandraContactPoint {
  host: string;
  port: number;
}

/**
 * Parses `host`, `host:port`, `[ipv6]` or `[ipv6]:port` (port 1 to 65535, default 9042).
 * @throws TypeError naming the accepted forms.
 */
export function parseContactPoint(value: unknown): CassandraContactPoint {
  const accepted = 'expected "host" or "host:port" (IPv6 as "[addr]:port"), port 1 to 65535';
  if (typeof value !== 'string' || value.trim() === '') {
    throw new TypeError(
      `cassandra contactPoints: ${JSON.stringify(value)} is invalid: ${accepted}`,
    );
  }
  const text = value.trim();
  let host = text;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1];
    portText = bracketed[2];
    if (isIP(host) !== 6) {
      throw new TypeError(`cassandra contactPoints: "${text}" is invalid: ${accepted}`);
    }
  } else if (text.includes(':')) {
    const parts = text.split(':');
    if (parts.length !== 2 || parts[0] === '') {
      throw new TypeError(`cassandra contactPoints: "${text}" is invalid: ${accepted}`);
    }
    [host, portText] = parts;
  }
  if (/[\s/@]/.test(host)) {
    throw new TypeError(`cassandra contactPoints: "${text}" is invalid: ${accepted}`);
  }
  let port = CASSANDRA_DEFAULT_PORT;
  if (portText !== undefined) {
    port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
    if (!(port >= 1 && port <= 65535)) {
      throw new TypeError(
        `cassandra contactPoints: "${text}" has an invalid port "${portText}": ${accepted}`,
      );
    }
  }
  return { host, port };
}

/** Options after validation and defaults. */
interface ResolvedOptions {
  contactPoints: CassandraContactPoint[];
  port: number;
  localDataCenter: string;
  keyspace: string;
  table: string;
  replication: Record<string, string | number>;
  createSchema: boolean;
  consistency: ConsistencyName;
  credentials?: { username: string; password: string };
  timeout: number;
}

function checkIdentifier(field: 'keyspace' | 'table', value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !CQL_IDENTIFIER.test(value)) {
    throw new TypeError(
      `cassandra ${field}: ${JSON.stringify(value)} is not a valid CQL identifier (${IDENTIFIER_RULE})`,
    );
  }
  // Unquoted CQL identifiers are case-insensitive: Cassandra stores them lowercased.
  return value.toLowerCase();
}

/**
 * Validates {@link CassandraTierOptions} and applies defaults.
 * @throws TypeError naming the field and the accepted values.
 */
export function resolveCassandraOptions(options: CassandraTierOptions): ResolvedOptions {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('cassandra options: expected an object');
  }
  const { contactPoints, localDataCenter } = options;
  if (!Array.isArray(contactPoints) || contactPoints.length === 0) {
    throw new TypeError(
      'cassandra contactPoints: expected a non-empty array of "host" or "host:port" strings',
    );
  }
  const points = contactPoints.map((p) => parseContactPoint(p));
  const ports = [...new Set(points.map((p) => p.port))];
  if (ports.length > 1) {
    // cassandra-driver reaches the nodes it discovers (system.peers) at one cluster-wide port.
    throw new TypeError(
      `cassandra contactPoints: all contact points must use the same port (cassandra-driver ` +
        `reaches discovered nodes at one port), got ${ports.join(', ')}`,
    );
  }
  if (typeof localDataCenter !== 'string' || localDataCenter.trim() === '') {
    throw new TypeError(
      'cassandra localDataCenter: expected a non-empty string, the data center of the nearest ' +
        'nodes (e.g. "datacenter1")',
    );
  }
  const keyspace = checkIdentifier('keyspace', options.keyspace, 'tiered_cache');
  const table = checkIdentifier('table', options.table, 'cache');
  if (table.length > MAX_TABLE_LENGTH) {
    throw new TypeError(
      `cassandra table: "${options.table}" is too long: at most ${MAX_TABLE_LENGTH} characters, ` +
        `as the counter table "<table>${COUNTER_SUFFIX}" must fit Cassandra's 48`,
    );
  }
  const consistency = options.consistency ?? 'localOne';
  if (!(CONSISTENCIES as readonly string[]).includes(consistency)) {
    throw new TypeError(
      `cassandra consistency: ${JSON.stringify(consistency)} is not one of ${CONSISTENCIES.join(', ')}`,
    );
  }
  const replication = options.replication ?? { class: 'SimpleStrategy', replication_factor: 1 };
  if (
    replication === null ||
    typeof replication !== 'object' ||
    Array.isArray(replication) ||
    typeof replication.class !== 'string' ||
    replication.class === '' ||
    !Object.values(replication).every(
      (v) => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)),
    )
  ) {
    throw new TypeError(
      'cassandra replication: expected a map with a "class" string and string or number values, ' +
        `e.g. { class: 'NetworkTopologyStrategy', datacenter1: 3 }`,
    );
  }
  const createSchema = options.createSchema ?? true;
  if (typeof createSchema !== 'boolean') {
    throw new TypeError('cassandra createSchema: expected true or false');
  }
  const timeout = options.timeout ?? 2000;
  if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0) {
    throw new TypeError(`cassandra timeout: ${String(timeout)} is not a number of ms > 0`);
  }
  const { credentials } = options;
  if (
    credentials !== undefined &&
    (credentials === null ||
      typeof credentials.username !== 'string' ||
      typeof credentials.password !== 'string')
  ) {
    throw new TypeError('cassandra credentials: expected { username: string, password: string }');
  }
  return {
    contactPoints: points,
    port: ports[0],
    localDataCenter,
    keyspace,
    table,
    replication,
    createSchema,
    consistency,
    credentials,
    timeout,
  };
}

/** Renders a value as a CQL string literal (single quotes doubled). */
function cqlString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** Renders a replication map as a CQL map literal; every key and value is a quoted string. */
export function renderReplication(replication: Record<string, string | number>): string {
  const entries = Object.entries(replication).map(
    ([key, value]) => `${cqlString(key)}: ${cqlString(String(value))}`,
  );
  return `{${entries.join(', ')}}`;
}

function formatContactPoint({ host, port }: CassandraContactPoint): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Runs `fn` over `items` with at most `limit` calls in flight; results in input order. */
async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

interface Statements {
  select: string;
  insert: string;
  insertTtl: string;
  insertIfNotExists: string;
  insertIfNotExistsTtl: string;
  delete: string;
  deleteIf: string;
  increment: string;
  selectCounter: string;
}

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
  readonly kind: TierKind = 'cassandra';

  private readonly options: ResolvedOptions;
  private readonly statements: Statements;
  private readonly consistency: number;
  private readonly serialConsistency: number;
  private client: Client | undefined;
  private connecting: Promise<void> | undefined;
  private connected = false;
  private closed = false;
  /** Counter resets in flight per key, so concurrent deletes of one key subtract once. */
  private readonly resets = new Map<string, Promise<void>>();

  /**
   * Validates the options; opens nothing (see {@link connect}).
   * @param options the tier options; see {@link CassandraTierOptions} for defaults.
   * @param name the name used in stats, logs and errors. Default `cassandra`.
   * @throws TypeError when an option is invalid, naming the field and the accepted values.
   */
  constructor(
    options: CassandraTierOptions,
    /** Human-readable name used in stats, logs and error events. */
    readonly name = 'cassandra',
  ) {
    this.options = resolveCassandraOptions(options);
    const { keyspace, table, consistency } = this.options;
    const data = `"${keyspace}"."${table}"`;
    const counters = `"${keyspace}"."${table}${COUNTER_SUFFIX}"`;
    this.statements = {
      select: `SELECT v FROM ${data} WHERE k = ?`,
      insert: `INSERT INTO ${data} (k, v) VALUES (?, ?)`,
      insertTtl: `INSERT INTO ${data} (k, v) VALUES (?, ?) USING TTL ?`,
      insertIfNotExists: `INSERT INTO ${data} (k, v) VALUES (?, ?) IF NOT EXISTS`,
      insertIfNotExistsTtl: `INSERT INTO ${data} (k, v) VALUES (?, ?) IF NOT EXISTS USING TTL ?`,
      delete: `DELETE FROM ${data} WHERE k = ?`,
      deleteIf: `DELETE FROM ${data} WHERE k = ? IF v = ?`,
      increment: `UPDATE ${counters} SET c = c + ? WHERE k = ?`,
      selectCounter: `SELECT c FROM ${counters} WHERE k = ?`,
    };
    this.consistency = types.consistencies[consistency];
    this.serialConsistency = consistency.startsWith('local')
      ? types.consistencies.localSerial
      : types.consistencies.serial;
  }

  /** The contact points as `host:port`, for messages. */
  get contactPoints(): string[] {
    return this.options.contactPoints.map(formatContactPoint);
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
   * @throws Error naming the contact points when no node can be reached, or naming the missing
   * keyspace or table.
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
    const clientOptions: ClientOptions = {
      contactPoints: this.contactPoints,
      localDataCenter: o.localDataCenter,
      credentials: o.credentials,
      protocolOptions: { port: o.port },
      socketOptions: {
        connectTimeout: Math.min(Math.max(o.timeout, 1000), MAX_CONNECT_TIMEOUT_MS),
        readTimeout: o.timeout,
      },
      queryOptions: { consistency: this.consistency, prepare: true },
    };
    const client = new Client(clientOptions);
    this.client = client;
    try {
      await client.connect();
    } catch (err) {
      this.client = undefined;
      await releaseFailedClient(client);
      throw new Error(
        `cassandra tier "${this.name}": cannot connect to ${this.contactPoints.join(', ')} ` +
          `(local data center "${o.localDataCenter}"): ${describeConnectError(err)}`,
        { cause: err },
      );
    }
    try {
      if (o.createSchema) await this.createSchema(client);
      else await this.checkSchema(client);
    } catch (err) {
      this.client = undefined;
      await client.shutdown().catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      // close() ran while we were connecting.
      this.client = undefined;
      await client.shutdown();
      throw this.closedError();
    }
    this.connected = true;
  }

  private async createSchema(client: Client): Promise<void> {
    const { keyspace, table, replication } = this.options;
    const statements = [
      `CREATE KEYSPACE IF NOT EXISTS "${keyspace}" WITH replication = ${renderReplication(replication)}`,
      `CREATE TABLE IF NOT EXISTS "${keyspace}"."${table}" (k text PRIMARY KEY, v blob)`,
      `CREATE TABLE IF NOT EXISTS "${keyspace}"."${table}${COUNTER_SUFFIX}" (k text PRIMARY KEY, c counter)`,
    ];
    for (const cql of statements) {
      try {
        // DDL: not prepared; the driver waits for schema agreement before resolving.
        await client.execute(cql, [], { prepare: false, consistency: this.consistency });
      } catch (err) {
        throw new Error(
          `cassandra tier "${this.name}": creating the schema failed on "${cql}": ${errorMessage(err)}`,
          { cause: err },
        );
      }
    }
  }

  private async checkSchema(client: Client): Promise<void> {
    const { keyspace, table } = this.options;
    const hint = 'create it or set createSchema: true';
    await client.metadata.refreshKeyspace(keyspace);
    if (!Object.hasOwn(client.metadata.keyspaces, keyspace)) {
      throw new Error(
        `cassandra tier "${this.name}": keyspace "${keyspace}" does not exist and createSchema ` +
          `is false: ${hint}`,
      );
    }
    for (const [name, columns] of [
      [table, '(k text PRIMARY KEY, v blob)'],
      [`${table}${COUNTER_SUFFIX}`, '(k text PRIMARY KEY, c counter)'],
    ] as const) {
      if (!(await client.metadata.getTable(keyspace, name))) {
        throw new Error(
          `cassandra tier "${this.name}": table "${keyspace}"."${name}" does not exist and ` +
            `createSchema is false: ${hint}, as ${columns}`,
        );
      }
    }
  }

  /** @returns the value stored at `key`, or `undefined` when absent or expired. */
  async get(key: string): Promise<Buffer | undefined> {
    const rs = await this.execute(this.statements.select, [key], true);
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
    const values = await mapLimit(unique, BULK_CONCURRENCY, (k) => this.get(k));
    const byKey = new Map(unique.map((k, i) => [k, values[i]]));
    return keys.map((k) => byKey.get(k));
  }

  /**
   * Stores `value` at `key` (`INSERT ... USING TTL`); `ttlMs` 0 stores without expiry.
   * See {@link toCassandraTtl} for rounding and caps.
   */
  async set(key: string, value: Buffer, ttlMs: number): Promise<void> {
    const ttl = toCassandraTtl(ttlMs);
    if (ttl === undefined) await this.execute(this.statements.insert, [key, value], true);
    else await this.execute(this.statements.insertTtl, [key, value, ttl], true);
  }

  /** Concurrent {@link set}s; rejects with the first failure. */
  async setMany(entries: readonly TierWrite<Buffer>[]): Promise<void> {
    await mapLimit(entries, BULK_CONCURRENCY, (e) => this.set(e.key, e.value, e.ttlMs));
  }

  /**
   * Stores `value` only when `key` holds no live value: a lightweight transaction
   * (`INSERT ... IF NOT EXISTS`, Paxos at serial or local serial consistency), never retried.
   * @returns true when this call stored the value.
   */
  async add(key: string, value: Buffer, ttlMs: number): Promise<boolean> {
    const ttl = toCassandraTtl(ttlMs);
    const rs =
      ttl === undefined
        ? await this.execute(this.statements.insertIfNotExists, [key, value], false)
        : await this.execute(this.statements.insertIfNotExistsTtl, [key, value, ttl], false);
    return rs.first()?.get('[applied]') === true;
  }

  /**
   * Compare-and-delete as a lightweight transaction (`DELETE ... IF v = ?`), never retried.
   * Leaves the counter alone (leases, its one user, have none).
   * @returns true when this call deleted the row.
   */
  async deleteIf(key: string, expected: Buffer): Promise<boolean> {
    const rs = await this.execute(this.statements.deleteIf, [key, expected], false);
    return rs.first()?.get('[applied]') === true;
  }

  /**
   * Removes the value at `key` and resets its counter (see {@link increment}).
   *
   * The counter is reset by subtracting its current value, not deleted: Cassandra cannot
   * re-create a deleted counter (every later increment of it is lost until its tombstone is
   * purged, `gc_grace_seconds` after, 10 days by default). Increments concurrent with the reset
   * are kept. Concurrent deletes of one key from one tier subtract once; from different processes
   * they may subtract twice (the counter then goes below zero).
   */
  async delete(key: string): Promise<void> {
    await Promise.all([this.execute(this.statements.delete, [key], true), this.resetCounter(key)]);
  }

  /** Concurrent {@link delete}s of the distinct keys; rejects with the first failure. */
  async deleteMany(keys: readonly string[]): Promise<void> {
    await mapLimit([...new Set(keys)], BULK_CONCURRENCY, (k) => this.delete(k));
  }

  /**
   * Adds `by` (a safe integer, may be negative) to the counter at `key`, creating it at `by`,
   * with `UPDATE <table>_counters SET c = c + ?`, then reads the counter back.
   *
   * - Never retried by the driver (`isIdempotent: false` and a fall-through retry policy): on a
   *   timeout the increment may or may not have been applied, and the promise rejects.
   * - `ttlMs` is ignored: Cassandra counters cannot expire. Counters stay until deleted.
   * - The read-back is a separate statement: with concurrent increments of the same key the
   *   result may include increments made after this one (the final total is always exact).
   * - The counter is a 64-bit integer; beyond ±2^53 the returned number loses precision.
   */
  async increment(key: string, by: number, _ttlMs: number): Promise<number> {
    if (!Number.isSafeInteger(by)) {
      throw new RangeError(`cassandra increment: by must be a safe integer, got ${String(by)}`);
    }
    await this.execute(this.statements.increment, [types.Long.fromNumber(by), key], false);
    const value = await this.readCounter(key);
    if (value === undefined) {
      throw new Error(
        `cassandra tier "${this.name}": counter "${key}" was not found after incrementing it ` +
          `(was its row deleted outside this tier?)`,
      );
    }
    return value.toNumber();
  }

  /** Shuts the driver down (sockets and timers); the tier is unusable afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    this.connected = false;
    const client = this.client;
    this.client = undefined;
    if (client) await client.shutdown();
  }

  private async readCounter(key: string): Promise<types.Long | undefined> {
    const rs = await this.execute(this.statements.selectCounter, [key], true);
    const c: unknown = rs.first()?.get('c');
    return c instanceof types.Long ? c : undefined;
  }

  private resetCounter(key: string): Promise<void> {
    let pending = this.resets.get(key);
    if (!pending) {
      pending = (async () => {
        const current = await this.readCounter(key);
        if (current && !current.isZero()) {
          await this.execute(this.statements.increment, [current.negate(), key], false);
        }
      })().finally(() => this.resets.delete(key));
      this.resets.set(key, pending);
    }
    return pending;
  }

  /**
   * Runs a prepared data statement at the configured consistency and timeout.
   * Non-idempotent statements (counter updates, lightweight transactions) are never retried.
   */
  private execute(query: string, params: unknown[], idempotent: boolean) {
    const client = this.client;
    if (!client || !this.connected) {
      return Promise.reject(
        this.closed
          ? this.closedError()
          : new Error(`cassandra tier "${this.name}" is not connected: call connect() first`),
      );
    }
    const options: QueryOptions = {
      prepare: true,
      consistency: this.consistency,
      serialConsistency: this.serialConsistency,
      readTimeout: this.options.timeout,
      isIdempotent: idempotent,
    };
    if (!idempotent) options.retry = NEVER_RETRY;
    return client.execute(query, params, options);
  }

  private closedError(): Error {
    return new Error(`cassandra tier "${this.name}" is closed`);
  }
}

const NEVER_RETRY = new policies.retry.FallthroughRetryPolicy();

/** The private parts of cassandra-driver 4.10's Client that {@link releaseFailedClient} needs. */
interface ClientInternals {
  controlConnection?: { connection?: { closeAsync?: () => Promise<void> } | null };
}

/**
 * Frees what a failed `client.connect()` left open. cassandra-driver 4.10 keeps the control
 * connection's socket (and its heartbeat timer) when connecting fails after that socket opened,
 * e.g. on a wrong `localDataCenter`; `shutdown()` does not close it, so the process would not exit.
 */
async function releaseFailedClient(client: Client): Promise<void> {
  await client.shutdown().catch(() => undefined);
  const connection = (client as unknown as ClientInternals).controlConnection?.connection;
  await connection?.closeAsync?.().catch(() => undefined);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * One line per host tried, from the driver's `NoHostAvailableError.innerErrors` (its own message
 * embeds whole stack traces), or the plain message of any other error.
 */
function describeConnectError(err: unknown): string {
  const inner = (err as { innerErrors?: unknown } | null)?.innerErrors;
  if (inner && typeof inner === 'object' && Object.keys(inner).length > 0) {
    return Object.entries(inner)
      .map(([host, e]) => `${host}: ${errorMessage(e)}`)
      .join('; ');
  }
  return errorMessage(err);
}
