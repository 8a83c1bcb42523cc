import type { ChildProcess } from 'node:child_process';
import type { HerdOptions, TieredCacheModuleOptions } from '../../lib';
import { forkTsWorker, stopWorker } from './ts-worker';

/** Module options a worker boots with (JSON: no clock, no functions). */
export type WorkerConfig = Pick<TieredCacheModuleOptions, 'tiers' | 'namespace' | 'herd' | 'ttl'>;

export interface RunCommand {
  cmd: 'run';
  key: string;
  /** Concurrent reads of `key` in this process. */
  callers: number;
  /** How long the origin takes, ms. */
  delayMs: number;
  ttl?: number;
  herd?: HerdOptions;
  /** The origin never answers (a holder that is killed mid-compute). */
  hang?: boolean;
  /** `ours` (getOrSet), `wrap` (cache-manager's wrap over the same tiers), `none` (get, else compute and set). */
  mode?: 'ours' | 'wrap' | 'none';
}

export interface RunReport {
  type: 'done';
  pid: number;
  /** Origin calls made in this process. */
  calls: number;
  statuses: Record<string, number>;
  /** Distinct values returned (JSON). */
  values: string[];
  errors: string[];
  /** Per-caller latency, ms. */
  latencies: number[];
}

/** One app instance in its own process (see `herd-worker.ts`). */
export class HerdWorker {
  private constructor(private readonly child: ChildProcess) {}

  /** Forks `n` workers and resolves once every one has booted its module. */
  static async start(n: number, config: WorkerConfig): Promise<HerdWorker[]> {
    return Promise.all(
      Array.from({ length: n }, async () => {
        const child = await forkTsWorker(
          'herd-worker.ts',
          { HERD_WORKER_CONFIG: JSON.stringify(config) },
          'herd worker',
        );
        return new HerdWorker(child);
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Runs one command; resolves with its report. */
  run(cmd: Omit<RunCommand, 'cmd'>): Promise<RunReport> {
    return new Promise((resolve, reject) => {
      const onMessage = (m: RunReport | { type: 'error'; message: string }) => {
        if (m.type === 'done') resolve(m);
        else if (m.type === 'error') reject(new Error(m.message));
        else return;
        this.child.off('message', onMessage);
      };
      this.child.on('message', onMessage);
      this.child.send({ cmd: 'run', ...cmd });
    });
  }

  /** Resolves when the worker's origin is called (for killing a holder mid-compute). */
  computing(): Promise<void> {
    return new Promise((resolve) => {
      const onMessage = (m: { type: string }) => {
        if (m.type !== 'computing') return;
        this.child.off('message', onMessage);
        resolve();
      };
      this.child.on('message', onMessage);
    });
  }

  kill(): Promise<void> {
    return this.stopWith(() => this.child.kill('SIGKILL'));
  }

  close(): Promise<void> {
    return this.stopWith(() => this.child.send({ cmd: 'exit' }));
  }

  private stopWith(stop: () => void): Promise<void> {
    return stopWorker(this.child, stop);
  }
}
