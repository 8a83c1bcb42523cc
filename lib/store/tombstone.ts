/**
 * What a delete leaves in the nearer shared tiers (memcached in front of Cassandra) instead of
 * nothing, for {@link TOMBSTONE_TTL_MS}: a read that found the old value in a farther tier just
 * before the delete reached it backfills with `add`, which a tombstone (or any newer value)
 * refuses. A plain delete there let another instance's backfill land after the delete and serve
 * the deleted value to every instance until its TTL.
 *
 * Two bytes no encoded entry starts with (the codec's format byte is 0xC7, a counter is ASCII
 * digits): readers take it for a miss.
 */
export const TOMBSTONE: Buffer = Buffer.from([0xc6, 0x00]);

/**
 * How long a tombstone lives, ms: longer than a read of a far tier and its backfill can take
 * (each bounded by its tier's timeout), capped by the tier's own TTL cap.
 */
export const TOMBSTONE_TTL_MS = 10_000;

/** Whether a shared tier's payload is a tombstone. */
export function isTombstone(payload: unknown): boolean {
  return (
    Buffer.isBuffer(payload) &&
    payload.length === 2 &&
    payload[0] === TOMBSTONE[0] &&
    payload[1] === TOMBSTONE[1]
  );
}
