import { createHash, hash } from 'node:crypto';

/**
 * A ketama consistent-hash ring (the scheme of libketama, `hashring` and most memcached clients).
 *
 * Why not a library: `hashring` (3.2.0, the ring of the `memcached` client) has seen no release
 * for years, ships no types, and pulls in two 0.0.x packages (`connection-parse`,
 * `simple-lru-cache`) plus weighting and address parsing this tier does not need; the `ketama`
 * package is a single 1.0.0 release with no maintenance history. The algorithm itself is a few
 * lines over `node:crypto`, so it lives here, dependency-free, where auto discovery can reuse it.
 *
 * Each server gets {@link DEFAULT_POINTS_PER_SERVER} points: for `i` in `0..points/4`, the MD5 of
 * `"<server>-<i>"` yields four little-endian 32-bit points. A key's point is the first four bytes
 * of its MD5 (little-endian); it belongs to the server owning the first ring point at or after it
 * (wrapping around). Adding one server to `n` therefore moves about `1/(n+1)` of the keys, all of
 * them to the new server, and removing one moves only that server's keys.
 */
export const DEFAULT_POINTS_PER_SERVER = 160;

/** The ketama 32-bit hash of a string: the first four bytes of its MD5, little-endian. */
export function ketamaHash(value: string): number {
  // One-shot `crypto.hash` to hex is several times cheaper than createHash().digest() per key.
  const hex = hash('md5', value, 'hex');
  return (
    ((parseInt(hex.slice(6, 8), 16) << 24) |
      (parseInt(hex.slice(4, 6), 16) << 16) |
      (parseInt(hex.slice(2, 4), 16) << 8) |
      parseInt(hex.slice(0, 2), 16)) >>>
    0
  );
}

/** Key → owner lookups remembered per ring (dropped whole when full). */
const LOOKUP_MEMO_SIZE = 10_000;

/** An immutable ring over a set of server addresses; build a new one to change the set. */
export class HashRing {
  /** Sorted ring points. */
  private readonly points: Uint32Array;
  /** `owners[i]` is the index in {@link servers} of the server owning `points[i]`. */
  private readonly owners: Uint16Array;
  /** The servers on the ring, deduplicated, in the order given. */
  readonly servers: readonly string[];

  /**
   * @param servers server identifiers, normally `host:port` (the identifier is what is hashed,
   *   so every client of a cluster must spell a server the same way to agree on key placement)
   * @param pointsPerServer ring points per server, a multiple of 4. Default 160, as ketama.
   */
  constructor(servers: readonly string[], pointsPerServer = DEFAULT_POINTS_PER_SERVER) {
    if (!Number.isInteger(pointsPerServer) || pointsPerServer < 4 || pointsPerServer % 4 !== 0) {
      throw new RangeError(
        `pointsPerServer must be a positive multiple of 4, got ${pointsPerServer}`,
      );
    }
    this.servers = [...new Set(servers)];
    if (this.servers.length === 0) throw new RangeError('a hash ring needs at least one server');
    if (this.servers.length > 0xffff)
      throw new RangeError('a hash ring holds at most 65535 servers');

    const entries: { point: number; owner: number }[] = [];
    this.servers.forEach((server, owner) => {
      for (let i = 0; i < pointsPerServer / 4; i++) {
        const digest = createHash('md5').update(`${server}-${i}`).digest();
        for (let h = 0; h < 4; h++) entries.push({ point: digest.readUInt32LE(h * 4), owner });
      }
    });
    // Ties (two servers hashing to the same point) are broken by server name, so the ring does not
    // depend on the order in which servers were listed.
    entries.sort(
      (a, b) =>
        a.point - b.point ||
        (this.servers[a.owner] < this.servers[b.owner]
          ? -1
          : this.servers[a.owner] > this.servers[b.owner]
            ? 1
            : 0),
    );
    this.points = Uint32Array.from(entries, (e) => e.point);
    this.owners = Uint16Array.from(entries, (e) => e.owner);
  }

  private readonly memo = new Map<string, string>();

  /** The server that owns `key`. */
  serverFor(key: string): string {
    let server = this.memo.get(key);
    if (server === undefined) {
      server = this.lookup(key);
      if (this.memo.size >= LOOKUP_MEMO_SIZE) this.memo.clear();
      this.memo.set(key, server);
    }
    return server;
  }

  private lookup(key: string): string {
    const hash = ketamaHash(key);
    const points = this.points;
    // First point >= hash (binary search); past the last point, wrap to the first.
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid] < hash) lo = mid + 1;
      else hi = mid;
    }
    return this.servers[this.owners[lo === points.length ? 0 : lo]];
  }
}
