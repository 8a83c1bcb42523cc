import type { ChildProcess } from 'node:child_process';
import { stopWorker } from './ts-worker';

/** A worker's answer to request `id`: its result, or the error it threw (with its stack). */
export interface Answer<T> {
  id: number;
  ok: boolean;
  result?: T;
  error?: string;
}

/**
 * The spec's side of a worker process driven over IPC: each request `{ id, cmd }` gets one
 * {@link Answer}; a worker that exits rejects what it had not answered. `exit` is the command
 * that makes the worker close what it holds and exit.
 */
export class WorkerClient<Command> {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();

  protected constructor(
    readonly name: string,
    protected readonly child: ChildProcess,
    private readonly exitCommand: Command,
  ) {
    child.on('message', (m: Answer<unknown>) => {
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`worker ${name}: ${m.error}`));
    });
    child.on('exit', (code, signal) => {
      for (const p of this.pending.values())
        p.reject(new Error(`worker ${name} exited (${signal ?? code})`));
      this.pending.clear();
    });
  }

  request<T>(cmd: Command): Promise<T> {
    if (this.child.exitCode !== null || this.child.signalCode !== null)
      return Promise.reject(new Error(`worker ${this.name} has exited`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, cmd });
    });
  }

  /**
   * Sends the exit command; SIGKILLs the worker when it has not exited within `graceMs` (or
   * cannot be asked). Resolves once it has exited.
   */
  protected async stop(graceMs: number): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    try {
      await stopWorker(child, () => {
        try {
          child.send({ id: 0, cmd: this.exitCommand });
        } catch {
          child.kill('SIGKILL');
        }
      });
    } finally {
      clearTimeout(timer);
    }
  }
}
