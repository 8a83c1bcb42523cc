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
