import { createServer, type Server, type Socket } from 'node:net';
import { parseHostPort } from '../../lib/tiers/host-port';

/** One node as an ElastiCache configuration lists it. */
export interface EndpointNode {
  host: string;
  /** Empty for a node published without an IP. */
  ip: string;
  port: number;
}

/**
 * Plays an AWS ElastiCache configuration endpoint on a loopback port: answers
 * `config get cluster` (engine 1.4.14+) or, with `legacy`, `get AmazonElastiCache:cluster` (older
 * engines; `config get` is then answered `ERROR`), in the real wire format, with a version and a
 * node list the test changes at will. Every other command is answered `ERROR`, like memcached.
 * This is the only test double: the nodes it names are real memcached processes.
 */
export class ElastiCacheEndpoint {
  /** Every command line received, in order. */
  readonly commands: string[] = [];
  private version = 1;
  private nodes: EndpointNode[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly legacy: boolean,
  ) {}

  /** `127.0.0.1:port`. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Questions about the cluster received so far. */
  get polls(): number {
    return this.commands.filter((c) => c === 'config get cluster' || c.startsWith('get ')).length;
  }

  /**
   * Starts the endpoint on `port` (default: a free one).
   *
   * @param servers `host:port` of real memcached nodes, published as
   *   `nodeN.test.cfg.use1.cache.amazonaws.com|<ip>|<port>`.
   */
  static async start(
    options: { version?: number; servers?: string[]; legacy?: boolean; port?: number } = {},
  ): Promise<ElastiCacheEndpoint> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address !== 'object') throw new Error('no endpoint port');
    const endpoint = new ElastiCacheEndpoint(server, address.port, options.legacy ?? false);
    server.on('connection', (socket) => endpoint.serve(socket));
    endpoint.setConfig(options.version ?? 1, options.servers ?? []);
    return endpoint;
  }

  /** Publishes a configuration: `servers` as `host:port` of real nodes (IP in the IP field). */
  setConfig(version: number, servers: string[]): void {
    this.setNodes(
      version,
      servers.map((s, i) => {
        const server = parseHostPort(s);
        if (typeof server === 'string') throw new Error(`${JSON.stringify(s)} ${server}`);
        return {
          host: `node${i + 1}.test.cfg.use1.cache.amazonaws.com`,
          ip: server.host,
          port: server.port,
        };
      }),
    );
  }

  /** Publishes a configuration node by node (e.g. without IPs). */
  setNodes(version: number, nodes: EndpointNode[]): void {
    this.version = version;
    this.nodes = nodes;
  }

  /** The payload as ElastiCache sends it: `<version>\n<host|ip|port …>\n`. */
  payload(): string {
    return `${this.version}\n${this.nodes.map((n) => `${n.host}|${n.ip}|${n.port}`).join(' ')}\n`;
  }

  /** Closes the listener and every open connection. */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      for (let eol = pending.indexOf('\r\n'); eol >= 0; eol = pending.indexOf('\r\n')) {
        const line = pending.slice(0, eol);
        pending = pending.slice(eol + 2);
        this.commands.push(line);
        socket.write(this.answer(line));
      }
    });
  }

  private answer(line: string): string {
    const payload = this.payload();
    const bytes = Buffer.byteLength(payload, 'latin1');
    if (line === 'config get cluster' && !this.legacy) {
      return `CONFIG cluster 0 ${bytes}\r\n${payload}\r\nEND\r\n`;
    }
    if (line === 'get AmazonElastiCache:cluster' && this.legacy) {
      return `VALUE AmazonElastiCache:cluster 0 ${bytes}\r\n${payload}\r\nEND\r\n`;
    }
    if (line.startsWith('get ')) return 'END\r\n';
    return 'ERROR\r\n';
  }
}
