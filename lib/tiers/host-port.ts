import { isIP } from 'node:net';

/** A validated `host:port`. */
export interface HostPort {
  /** Host name or IP address (IPv6 without brackets). */
  host: string;
  port: number;
  /** `host:port` as given (trimmed), or with the default port added; IPv6 as `[addr]:port`. */
  address: string;
}

/** What {@link parseHostPort} accepts, for error messages. */
export const HOST_PORT_FORMS = '"host:port" (IPv6 as "[addr]:port"), port 1-65535';

/**
 * Parses `host:port` (IPv6 as `[addr]:port`); with `defaultPort`, the port may be left out.
 * The one parser of server addresses: memcached servers, ElastiCache endpoints and Cassandra
 * contact points.
 *
 * @returns the address, or a sentence saying what is wrong with it (for the caller to place in
 *   an error naming the option).
 */
export function parseHostPort(text: string, defaultPort?: number): HostPort | string {
  const address = text.trim();
  let host: string;
  let port: string | undefined;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(address);
  if (bracketed) {
    host = bracketed[1];
    port = bracketed[2];
    if (isIP(host) !== 6) return 'has no valid IPv6 address between the brackets';
  } else {
    const colon = address.lastIndexOf(':');
    host = colon < 0 ? address : address.slice(0, colon);
    port = colon < 0 ? undefined : address.slice(colon + 1);
    if (host.includes(':')) return 'is ambiguous: write an IPv6 address as "[addr]:port"';
  }
  if (host === '' || /[\s/@[\]]/.test(host)) return 'has no valid host';
  if (port === '' || (port === undefined && defaultPort === undefined)) return 'has no port';
  const n = port === undefined ? defaultPort! : portNumber(port);
  if (n === undefined) return `has an invalid port ${JSON.stringify(port)} (expected 1-65535)`;
  return { host, port: n, address: port === undefined ? formatHostPort(host, n) : address };
}

/** The TCP port written in `text` (decimal, 1-65535), else undefined. */
export function portNumber(text: string): number | undefined {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  return n >= 1 && n <= 65535 ? n : undefined;
}

/** `host:port`, with brackets around an IPv6 address. */
export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
