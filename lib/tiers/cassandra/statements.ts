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

/**
 * Creates the keyspace and both tables (`IF NOT EXISTS`: safe from several instances at once).
 * @throws TieredCacheError `E_SCHEMA` naming the statement that failed.
 */
export async function createSchema(
  client: Client,
  schema: CassandraSchema,
  consistency: number,
): Promise<void> {
  const { keyspace, table, replication } = schema;
  const statements = [
    `CREATE KEYSPACE IF NOT EXISTS "${keyspace}" WITH replication = ${renderReplication(replication)}`,
    `CREATE TABLE IF NOT EXISTS "${keyspace}"."${table}" ${DATA_COLUMNS}`,
    `CREATE TABLE IF NOT EXISTS "${keyspace}"."${table}${COUNTER_SUFFIX}" ${COUNTER_COLUMNS}`,
  ];
  for (const cql of statements) {
    try {
      // DDL: not prepared; the driver waits for schema agreement before resolving.
      await client.execute(cql, [], { prepare: false, consistency });
    } catch (err) {
      throw new TieredCacheError(
        'E_SCHEMA',
        `cassandra tier "${schema.name}": creating the schema failed on "${cql}": ${messageOf(err)}`,
        { cause: err },
      );
    }
  }
}

/**
 * Checks that the keyspace and both tables exist (for `createSchema: false`).
 * @throws TieredCacheError `E_SCHEMA` naming the missing keyspace or table.
 */
export async function checkSchema(client: Client, schema: CassandraSchema): Promise<void> {
  const { name, keyspace, table } = schema;
  const hint = 'create it or set createSchema: true';
  await client.metadata.refreshKeyspace(keyspace);
  if (!Object.hasOwn(client.metadata.keyspaces, keyspace)) {
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
