import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from 'cassandra-driver';
import { messageOf, TieredCacheError } from '../../errors';

/** Suffix of the counter table's name: `<table>_counters`. */
export const COUNTER_SUFFIX = '_counters';

/** The CQL of every data statement of one tier (all prepared). */
export interface CassandraStatements {
  select: string;
  /** Whether a value row exists, without reading the value. */
  exists: string;
  insert: string;
  insertTtl: string;
  insertIfNotExists: string;
  insertIfNotExistsTtl: string;
  /** `raise`: an insert whose write timestamp is the number raised to (see `raiseWrite`). */
  raise: string;
  raiseTtl: string;
  delete: string;
  deleteIf: string;
  increment: string;
  selectCounter: string;
  /** Every value row: a full table scan, read page by page (see `CassandraTier.entries`). */
  scan: string;
}

/** The data statements over `<keyspace>.<table>` and `<keyspace>.<table>_counters`. */
export function cassandraStatements(keyspace: string, table: string): CassandraStatements {
  const data = `"${keyspace}"."${table}"`;
  const counters = `"${keyspace}"."${table}${COUNTER_SUFFIX}"`;
  return {
    select: `SELECT v FROM ${data} WHERE k = ?`,
    exists: `SELECT k FROM ${data} WHERE k = ?`,
    insert: `INSERT INTO ${data} (k, v) VALUES (?, ?)`,
    insertTtl: `INSERT INTO ${data} (k, v) VALUES (?, ?) USING TTL ?`,
    insertIfNotExists: `INSERT INTO ${data} (k, v) VALUES (?, ?) IF NOT EXISTS`,
    insertIfNotExistsTtl: `INSERT INTO ${data} (k, v) VALUES (?, ?) IF NOT EXISTS USING TTL ?`,
    raise: `INSERT INTO ${data} (k, v) VALUES (?, ?) USING TIMESTAMP ?`,
    raiseTtl: `INSERT INTO ${data} (k, v) VALUES (?, ?) USING TIMESTAMP ? AND TTL ?`,
    delete: `DELETE FROM ${data} WHERE k = ?`,
    deleteIf: `DELETE FROM ${data} WHERE k = ? IF v = ?`,
    increment: `UPDATE ${counters} SET c = c + ? WHERE k = ?`,
    selectCounter: `SELECT c FROM ${counters} WHERE k = ?`,
    scan: `SELECT k, v FROM ${data}`,
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

/** Where a tier keeps its entries, and under which name it reports schema errors. */
export interface CassandraSchema {
  /** The tier's name, for messages. */
  name: string;
  keyspace: string;
  table: string;
  replication: Record<string, string | number>;
}

const DATA_COLUMNS = '(k text PRIMARY KEY, v blob)';
const COUNTER_COLUMNS = '(k text PRIMARY KEY, c counter)';

/** Attempts of one schema statement, and the pause before the second (doubling after). */
const SCHEMA_ATTEMPTS = 5;
const SCHEMA_RETRY_MS = 100;

/**
 * Creates the keyspace and both tables (`IF NOT EXISTS`). Instances starting at the same moment
 * race: `IF NOT EXISTS` is checked before the change is announced, so Cassandra may apply two
 * creations of one table and refuse the later ones ("Column family ID mismatch", or "already
 * exists"). A statement that fails is therefore followed by a look at the schema: when the
 * keyspace or table is there (another instance made it), that step is done; otherwise it is tried
 * again, up to {@link SCHEMA_ATTEMPTS} times with a growing pause.
 * @throws TieredCacheError `E_SCHEMA` naming the statement that failed.
 */
export async function createSchema(
  client: Client,
  schema: CassandraSchema,
  consistency: number,
): Promise<void> {
  const { keyspace, table, replication } = schema;
  const steps: Array<[cql: string, exists: () => Promise<boolean>]> = [
    [
      `CREATE KEYSPACE IF NOT EXISTS "${keyspace}" WITH replication = ${renderReplication(replication)}`,
      () => keyspaceExists(client, keyspace),
    ],
    [
      `CREATE TABLE IF NOT EXISTS "${keyspace}"."${table}" ${DATA_COLUMNS}`,
      () => tableExists(client, keyspace, table),
    ],
    [
      `CREATE TABLE IF NOT EXISTS "${keyspace}"."${table}${COUNTER_SUFFIX}" ${COUNTER_COLUMNS}`,
      () => tableExists(client, keyspace, `${table}${COUNTER_SUFFIX}`),
    ],
  ];
  for (const [cql, exists] of steps) {
    for (let attempt = 1; ; attempt++) {
      try {
        // DDL: not prepared; the driver waits for schema agreement before resolving.
        await client.execute(cql, [], { prepare: false, consistency });
        break;
      } catch (err) {
        if (await exists().catch(() => false)) break;
        if (attempt < SCHEMA_ATTEMPTS) {
          await sleep(SCHEMA_RETRY_MS * 2 ** (attempt - 1));
          continue;
        }
        throw new TieredCacheError(
          'E_SCHEMA',
          `cassandra tier "${schema.name}": creating the schema failed on "${cql}" ` +
            `(${attempt} attempts): ${messageOf(err)}`,
          { cause: err },
        );
      }
    }
  }
}

async function keyspaceExists(client: Client, keyspace: string): Promise<boolean> {
  await client.metadata.refreshKeyspace(keyspace);
  return Object.hasOwn(client.metadata.keyspaces, keyspace);
}

async function tableExists(client: Client, keyspace: string, table: string): Promise<boolean> {
  // A table's metadata is cached per keyspace: read the keyspace again first.
  await client.metadata.refreshKeyspace(keyspace);
  return Boolean(await client.metadata.getTable(keyspace, table));
}

/**
 * Checks that the keyspace and both tables exist (for `createSchema: false`).
 * @throws TieredCacheError `E_SCHEMA` naming the missing keyspace or table.
 */
export async function checkSchema(client: Client, schema: CassandraSchema): Promise<void> {
  const { name, keyspace, table } = schema;
  const hint = 'create it or set createSchema: true';
  if (!(await keyspaceExists(client, keyspace))) {
    throw new TieredCacheError(
      'E_SCHEMA',
      `cassandra tier "${name}": keyspace "${keyspace}" does not exist and createSchema ` +
        `is false: ${hint}`,
    );
  }
  for (const [tableName, columns] of [
    [table, DATA_COLUMNS],
    [`${table}${COUNTER_SUFFIX}`, COUNTER_COLUMNS],
  ] as const) {
    if (!(await client.metadata.getTable(keyspace, tableName))) {
      throw new TieredCacheError(
        'E_SCHEMA',
        `cassandra tier "${name}": table "${keyspace}"."${tableName}" does not exist and ` +
          `createSchema is false: ${hint}, as ${columns}`,
      );
    }
  }
}
