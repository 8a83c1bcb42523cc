/** A validated memcached server address. */
export interface ServerAddress {
  /** Host name or IP address (IPv6 without brackets). */
  host: string;
  port: number;
  /** The entry as given (trimmed), e.g. `10.0.0.1:11211` or `[::1]:11211`: the ring identifier. */
  address: string;
}

/**
 * Validates a list of `host:port` entries (IPv6 as `[addr]:port`).
 *
 * @throws TypeError naming the bad entry, e.g. `memcached servers[0]: "localhost" has no port`.
 */
export function parseServers(servers: unknown, label = 'memcached servers'): ServerAddress[] {
  if (!Array.isArray(servers) || servers.length === 0) {
    throw new TypeError(`${label}: expected a non-empty array of "host:port" strings`);
  }
  const seen = new Set<string>();
  return servers.map((entry: unknown, i) => {
    const where = `${label}[${i}]`;
    if (typeof entry !== 'string') {
      throw new TypeError(`${where}: expected a "host:port" string, got ${typeof entry}`);
    }
    const parsed = parseServer(entry.trim(), `${where}: ${JSON.stringify(entry)}`);
    if (seen.has(parsed.address)) {
      throw new TypeError(`${where}: ${JSON.stringify(entry)} is listed twice`);
    }
    seen.add(parsed.address);
    return parsed;
  });
}

function parseServer(address: string, what: string): ServerAddress {
  let host: string;
  let port: string;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(address);
  if (bracketed) {
    host = bracketed[1];
    if (bracketed[2] === undefined) throw new TypeError(`${what} has no port`);
    port = bracketed[2];
  } else {
    const colon = address.lastIndexOf(':');
    if (colon < 0) throw new TypeError(`${what} has no port`);
    host = address.slice(0, colon);
    port = address.slice(colon + 1);
    if (host.includes(':')) {
      throw new TypeError(`${what} is ambiguous: write an IPv6 address as "[addr]:port"`);
    }
  }
  if (host === '' || /[\s/@]/.test(host)) throw new TypeError(`${what} has no valid host`);
  if (port === '') throw new TypeError(`${what} has no port`);
  const n = portNumber(port);
  if (n === undefined) {
    throw new TypeError(`${what} has an invalid port ${JSON.stringify(port)} (expected 1-65535)`);
  }
  return { host, port: n, address };
}

/** The TCP port written in `text` (decimal, 1-65535), else undefined. */
export function portNumber(text: string): number | undefined {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  return n >= 1 && n <= 65535 ? n : undefined;
}
