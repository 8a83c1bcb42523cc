import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

/** Throws a message naming the package to install when `command` is not on PATH. */
export function requireCommand(command: string, args: string[], install: string): void {
  const probe = spawnSync(command, args, { stdio: 'ignore' });
  if (probe.error) {
    throw new Error(
      `'${command}' was not found on PATH: ${install}. ` +
        'Or point the tests at running servers with MEMCACHED_SERVERS / CASSANDRA_CONTACT_POINTS / REDIS_URL.',
    );
  }
}

/** A child process whose exit is tracked, so waiters can fail fast instead of timing out. */
export class ManagedProcess {
  readonly child: ChildProcess;
  private exitInfo: string | undefined;
  private readonly exited: Promise<void>;
  private output = '';

  constructor(command: string, args: string[], options: { cwd?: string; name: string }) {
    this.child = spawn(command, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-8000);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitInfo = `${options.name} exited (code ${code}, signal ${signal})`;
        resolve();
      });
      this.child.once('error', (err) => {
        this.exitInfo = `${options.name} failed to start: ${err.message}`;
        resolve();
      });
    });
    ManagedProcess.live.add(this);
    void this.exited.then(() => ManagedProcess.live.delete(this));
  }

  /** Undefined while running; a description of how it ended otherwise (with its last output). */
  deadReason(): string | undefined {
    return this.exitInfo && `${this.exitInfo}\n${this.output.split('\n').slice(-25).join('\n')}`;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Every process started here, so a crashing runner can still take them down. */
  static readonly live = new Set<ManagedProcess>();
}

process.once('exit', () => {
  for (const p of ManagedProcess.live) p.child.kill('SIGKILL');
});
