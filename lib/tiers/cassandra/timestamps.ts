import { types } from 'cassandra-driver';
import { raisedBytes } from '../max-register';
import type { CassandraStatements } from './statements';

/**
 * Write timestamps: Cassandra keeps, for each cell and on every replica, the write with the
 * highest timestamp, whatever order writes arrive in (ties are broken by its own rules, a
 * deletion first).
 * The tier's writes use the time ({@link WriteClock}); `raise` uses the number it raises to
 * ({@link raiseWrite}).
 */

/**
 * Hands out the write timestamp of each write or delete, taken when it is called (microseconds,
 * strictly increasing in this clock): writes made one after the other take effect in that order
 * even when a later one reaches the server first (the earlier one waited for a connection, a
 * prepare or a retry).
 */
export class WriteClock {
  /** The last timestamp handed out, µs. */
  private last = 0;

  /** The next timestamp: now in µs, or one more than the last when that is not below it. */
  next(): types.Long {
    const now = Date.now() * 1000;
    this.last = now > this.last ? now : this.last + 1;
    return types.Long.fromNumber(this.last);
  }
}

/**
 * The statement and parameters of `CassandraTier.raise(key, n)`, a max-register made of
 * Cassandra's own conflict rule: `INSERT INTO <table> (k, v) VALUES (?, ?) USING TIMESTAMP ?
 * [AND TTL ?]` with the write timestamp `n` and the value `n`'s ASCII digits. The highest `n`
 * wins on every replica, whatever order the writes arrive in (a delayed one, or one replayed by
 * hints or repair, included); it reads nothing and takes no lightweight transaction, and two
 * raises of one `n` write the same bytes (idempotent).
 *
 * What follows from `n` being the write timestamp:
 * - Keys written by `raise` must be written by nothing else. Tag times (about 1.8e15) are of the
 *   order of the microsecond timestamps of {@link WriteClock} (`Date.now() * 1000`): a `set` or
 *   `delete` of such a key is ignored while its timestamp is below the raised `n`, and a raise is
 *   ignored while `n` is below the timestamp of a `set` or of a `delete`'s tombstone.
 * - With a TTL, the raised cell expires into a tombstone that keeps its timestamp until
 *   compaction purges it (after `gc_grace_seconds`, 10 days by default): until then a raise of a
 *   lower `n` is still ignored (`get` answers `undefined`), a higher one is stored.
 *
 * @param ttl the `USING TTL` seconds (see `toCassandraTtl`), undefined for none.
 */
export function raiseWrite(
  statements: CassandraStatements,
  key: string,
  n: number,
  ttl: number | undefined,
): { query: string; params: unknown[] } {
  const params: unknown[] = [key, raisedBytes(n), types.Long.fromNumber(n)];
  if (ttl === undefined) return { query: statements.raise, params };
  params.push(ttl);
  return { query: statements.raiseTtl, params };
}
