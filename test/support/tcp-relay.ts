import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';

/**
 * A TCP relay in front of a real server (a copy of the `HangingRelay` of
 * `test/integration/cassandra-limits.spec.ts`, plus `drop`): point a client at `address` and make
 * the server look hung (`hang`: every byte held, connections stay open) or gone (`drop`: every
 * connection reset, new ones closed at once) without touching the server itself.
 */
export class TcpRelay {
  private mode: 'pass' | 'hang' | 'drop' = 'pass';
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server) {}

  /** Listens on a free loopback port and relays to `target` (`host:port`). */
  static async start(target: string): Promise<TcpRelay> {
    const [host, port] = target.split(':');
    const relay: TcpRelay = new TcpRelay(
      createServer((client) => {
        if (relay.mode === 'drop') {
          client.on('error', () => undefined);
          client.destroy();
          return;
        }
        const upstream = tcpConnect(Number(port), host);
        for (const s of [client, upstream]) {
          relay.sockets.add(s);
          s.on('close', () => relay.sockets.delete(s));
          s.on('error', () => undefined);
          if (relay.mode === 'hang') s.pause();
        }
        client.pipe(upstream);
        upstream.pipe(client);
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
      }),
    );
    await new Promise<void>((resolve) => relay.server.listen(0, '127.0.0.1', resolve));
    return relay;
  }

  get address(): string {
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new Error('relay not listening');
    return `127.0.0.1:${a.port}`;
  }

  /** Holds every byte both ways, on open connections and new ones, until {@link resume}. */
  hang(): void {
    this.mode = 'hang';
    for (const s of this.sockets) s.pause();
  }

  /** Resets every open connection and closes new ones at once, until {@link resume}. */
  drop(): void {
    this.mode = 'drop';
    for (const s of this.sockets) s.destroy();
  }

  /** Relays again (held bytes flow on). */
  resume(): void {
    this.mode = 'pass';
    for (const s of this.sockets) s.resume();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
