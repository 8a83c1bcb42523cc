import { at, describeValue, invalid } from '../../options';
import { parseHostPort, type HostPort } from '../host-port';

/**
 * Validates a list of `host:port` entries (IPv6 as `[addr]:port`): the servers of a memcached
 * tier, given or discovered.
 *
 * @param path where the list sits, for messages, e.g. `tiers[1].servers`.
 * @throws InvalidOptionError naming the bad entry, e.g. `tiers[1].servers[0]: "localhost" has no
 *   port`.
 */
export function parseServers(servers: unknown, path = 'servers'): HostPort[] {
  if (!Array.isArray(servers) || servers.length === 0) {
    throw invalid(path, 'expected a non-empty array of "host:port" strings');
  }
  const seen = new Set<string>();
  return servers.map((entry: unknown, i) => {
    const parsed = parseServer(entry, at(path, i));
    if (seen.has(parsed.address)) {
      throw invalid(at(path, i), `${JSON.stringify(entry)} is listed twice`);
    }
    seen.add(parsed.address);
    return parsed;
  });
}

/**
 * Validates one `host:port` (a server, or a configuration endpoint).
 *
 * @throws InvalidOptionError at `path`, e.g. `memcached.discovery.endpoint: "cfg" has no port`.
 */
export function parseServer(entry: unknown, path: string): HostPort {
  if (typeof entry !== 'string') {
    throw invalid(path, `expected a "host:port" string, got ${describeValue(entry)}`);
  }
  const parsed = parseHostPort(entry);
  if (typeof parsed === 'string') throw invalid(path, `${JSON.stringify(entry)} ${parsed}`);
  return parsed;
}
