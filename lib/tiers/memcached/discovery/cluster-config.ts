import { ClusterConfigError } from '../../../errors';
import { formatHostPort, portNumber } from '../../host-port';

/**
 * The ElastiCache (memcached) cluster configuration format, parsed without any I/O.
 *
 * A configuration endpoint answers `config get cluster` (engine 1.4.14 and later) with
 *
 *     CONFIG cluster 0 <bytes>\r\n
 *     <version>\n
 *     <host>|<ip>|<port> <host>|<ip>|<port> …\n
 *     \r\n
 *     END\r\n
 *
 * where `<bytes>` is the length of the two payload lines (`<version>\n<nodes>\n`). Engines before
 * 1.4.14 answer `get AmazonElastiCache:cluster` with the same payload after a
 * `VALUE AmazonElastiCache:cluster 0 <bytes>` line. The IP of a node may be empty
 * (`host||port`): the host name is used then.
 */

/** One node of a cluster configuration. */
export interface ClusterNode {
  /** Host name as published (may equal the IP). */
  host: string;
  /** IP address, or `undefined` when the configuration leaves it empty. */
  ip: string | undefined;
  port: number;
  /**
   * `ip:port` when the IP is known, else `host:port` (IPv6 as `[addr]:port`): the identifier the
   * memcached tier connects to and hashes on its ring.
   */
  address: string;
}

/** A parsed cluster configuration. */
export interface ClusterConfig {
  /** The configuration version; ElastiCache increments it on every node list change. */
  version: number;
  /** The nodes, in the order published. */
  nodes: ClusterNode[];
}

/** The outcome of reading one reply line-by-line from a configuration endpoint. */
export type ClusterReply =
  /** More bytes are needed. */
  | { kind: 'incomplete' }
  /** A `CONFIG cluster` or `VALUE AmazonElastiCache:cluster` block: its payload and total length. */
  | { kind: 'config'; payload: string; length: number }
  /** `END` alone: the key is absent (a plain memcached asked `get AmazonElastiCache:cluster`). */
  | { kind: 'miss'; length: number }
  /** `ERROR`, `CLIENT_ERROR …` or `SERVER_ERROR …`: the command is not supported or failed. */
  | { kind: 'error'; line: string; length: number };

const HEADER = /^(CONFIG cluster|VALUE AmazonElastiCache:cluster) (\d+) (\d+)(?: \d+)?$/;

/**
 * Reads one reply of a configuration endpoint from the start of `text` (bytes as latin1, so that
 * string lengths are byte counts).
 *
 * @throws ClusterConfigError when the reply is neither a configuration block, `END` nor an error
 *   line, or when the block is not followed by `\r\nEND\r\n`.
 */
export function scanClusterReply(text: string): ClusterReply {
  const eol = text.indexOf('\r\n');
  if (eol < 0) {
    if (text.length > 1024) throw new ClusterConfigError(`no reply line in ${preview(text)}`);
    return { kind: 'incomplete' };
  }
  const line = text.slice(0, eol);
  if (line === 'END') return { kind: 'miss', length: eol + 2 };
  if (line === 'ERROR' || line.startsWith('CLIENT_ERROR') || line.startsWith('SERVER_ERROR')) {
    return { kind: 'error', line, length: eol + 2 };
  }
  const header = HEADER.exec(line);
  if (!header) throw new ClusterConfigError(`unexpected reply ${preview(line)}`);
  const bytes = Number(header[3]);
  const start = eol + 2;
  const trailer = '\r\nEND\r\n';
  if (text.length < start + bytes + trailer.length) return { kind: 'incomplete' };
  const payload = text.slice(start, start + bytes);
  if (text.slice(start + bytes, start + bytes + trailer.length) !== trailer) {
    throw new ClusterConfigError(
      `the ${bytes}-byte block after ${preview(line)} is not followed by "\\r\\nEND\\r\\n" ` +
        `(byte count wrong or reply truncated): ${preview(text.slice(start))}`,
    );
  }
  return { kind: 'config', payload, length: start + bytes + trailer.length };
}

/**
 * Parses a cluster configuration: either a whole reply (`CONFIG cluster …` or
 * `VALUE AmazonElastiCache:cluster …` through `END`) or the payload alone (`<version>\n<nodes>\n`).
 *
 * @throws ClusterConfigError naming what is wrong: no version, a bad version, no nodes, a node
 *   that is not `host|ip|port`, a bad port, a node listed twice, an `ERROR` or `END` reply.
 */
export function parseClusterConfig(text: string): ClusterConfig {
  let payload = text;
  if (/^(CONFIG|VALUE|END|ERROR|CLIENT_ERROR|SERVER_ERROR)\b/.test(text)) {
    const reply = scanClusterReply(text);
    switch (reply.kind) {
      case 'incomplete':
        throw new ClusterConfigError(`truncated reply: ${preview(text)}`);
      case 'miss':
        throw new ClusterConfigError('no cluster configuration (END): not an ElastiCache endpoint');
      case 'error':
        throw new ClusterConfigError(`the endpoint answered ${preview(reply.line)}`);
      case 'config':
        payload = reply.payload;
    }
  }
  const lines = payload
    .replace(/\r/g, '')
    .split('\n')
    .map((l) => l.trim());
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) throw new ClusterConfigError('empty cluster configuration');
  if (lines.length !== 2) {
    throw new ClusterConfigError(
      `expected 2 lines (version, node list), got ${lines.length}: ${preview(payload)}`,
    );
  }
  const [versionLine, nodesLine] = lines;
  if (!/^\d{1,15}$/.test(versionLine)) {
    throw new ClusterConfigError(
      `the version ${preview(versionLine)} is not a non-negative integer`,
    );
  }
  const version = Number(versionLine);
  const entries = nodesLine.split(/\s+/).filter(Boolean);
  if (entries.length === 0) throw new ClusterConfigError(`version ${version} lists no nodes`);
  const seen = new Set<string>();
  const nodes = entries.map((entry, i) => {
    const node = parseNode(entry, `node ${i + 1} ${preview(entry)}`);
    if (seen.has(node.address)) {
      throw new ClusterConfigError(`node ${i + 1} ${preview(entry)} is listed twice`);
    }
    seen.add(node.address);
    return node;
  });
  return { version, nodes };
}

function parseNode(entry: string, what: string): ClusterNode {
  const parts = entry.split('|');
  if (parts.length !== 3) {
    throw new ClusterConfigError(`${what} is not "host|ip|port"`);
  }
  const [host, ipField, portField] = parts;
  const ip = ipField === '' ? undefined : ipField;
  if (host === '' && ip === undefined) throw new ClusterConfigError(`${what} has no host or IP`);
  for (const name of [host, ip ?? '']) {
    if (/[\s/@[\]]/.test(name)) throw new ClusterConfigError(`${what} has an invalid host or IP`);
  }
  const port = portNumber(portField);
  if (port === undefined) {
    throw new ClusterConfigError(`${what} has an invalid port ${JSON.stringify(portField)}`);
  }
  const target = ip ?? host;
  const address = formatHostPort(target, port);
  return { host: host === '' ? target : host, ip, port, address };
}

function preview(text: string): string {
  return JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text);
}
