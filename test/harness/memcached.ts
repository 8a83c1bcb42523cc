import { freePort, waitForPort } from './ports';
import { ManagedProcess, requireCommand } from './processes';

export const MEMCACHED_INSTALL_HINT =
  'install the Debian package "memcached" (apt-get install -y memcached)';

/** One real memcached process on a loopback port; can be stopped and started again on the same port. */
export class MemcachedNode {
  private proc: ManagedProcess | undefined;

  private constructor(
    readonly host: string,
    readonly port: number,
    private readonly memoryMb: number,
  ) {}

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  /** The process id while running; undefined otherwise. */
  get pid(): number | undefined {
    return this.running ? this.proc?.child.pid : undefined;
  }

  static async start(opts: { port?: number; memoryMb?: number } = {}): Promise<MemcachedNode> {
    requireCommand('memcached', ['-h'], MEMCACHED_INSTALL_HINT);
    const node = new MemcachedNode(
      '127.0.0.1',
      opts.port ?? (await freePort()),
      opts.memoryMb ?? 64,
    );
    await node.start();
    return node;
  }

  /** (Re)starts the process on this node's port; a restarted memcached is empty, like a real one. */
  async start(): Promise<void> {
    if (this.running) return;
    const args = [
      '-l',
      this.host,
      '-p',
      String(this.port),
      '-U',
      '0',
      '-m',
      String(this.memoryMb),
      '-c',
      '1024',
    ];
    if (process.getuid?.() === 0) args.push('-u', 'root');
    const proc = new ManagedProcess('memcached', args, { name: `memcached ${this.address}` });
    this.proc = proc;
    await waitForPort(this.host, this.port, {
      timeoutMs: 10_000,
      what: `memcached ${this.address}`,
      alive: () => proc.deadReason(),
    });
  }

  /** Stops the process; `SIGKILL` simulates a crash. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.proc?.stop(signal);
  }
}
