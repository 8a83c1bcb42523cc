import { tmpdir } from 'node:os';
import { freePort, waitForPort } from './ports';
import { ManagedProcess, requireCommand } from './processes';

export const REDIS_INSTALL_HINT =
  'install the Debian package "redis-server" (apt-get install -y redis-server)';

/**
 * One real Redis process on a loopback port, with no configuration file and no persistence
 * (no RDB snapshots, no AOF): it holds data in memory only. Can be stopped and started again on
 * the same port.
 */
export class RedisNode {
  private proc: ManagedProcess | undefined;

  private constructor(
    readonly host: string,
    readonly port: number,
  ) {}

  /** `host:port`. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** `redis://host:port`, as ioredis (and most Redis clients) take it. */
  get url(): string {
    return `redis://${this.address}`;
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  /** The process id while running; undefined otherwise. */
  get pid(): number | undefined {
    return this.running ? this.proc?.child.pid : undefined;
  }

  static async start(opts: { port?: number } = {}): Promise<RedisNode> {
    requireCommand('redis-server', ['--version'], REDIS_INSTALL_HINT);
    const node = new RedisNode('127.0.0.1', opts.port ?? (await freePort()));
    await node.start();
    return node;
  }

  /** (Re)starts the process on this node's port; a restarted Redis is empty (nothing persisted). */
  async start(): Promise<void> {
    if (this.running) return;
    const args = [
      '--port',
      String(this.port),
      '--bind',
      this.host,
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'no',
      // Nothing is written with persistence off; the working directory is a scratch one anyway.
      '--dir',
      tmpdir(),
    ];
    const proc = new ManagedProcess('redis-server', args, { name: `redis ${this.address}` });
    this.proc = proc;
    await waitForPort(this.host, this.port, {
      timeoutMs: 10_000,
      what: `redis ${this.address}`,
      alive: () => proc.deadReason(),
    });
  }

  /** Stops the process; `SIGKILL` simulates a crash. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.proc?.stop(signal);
  }
}
