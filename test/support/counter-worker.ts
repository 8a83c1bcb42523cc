/**
 * One app instance in its own Node process, for the cross-process counter tests. Forked by
 * {@link startCounterWorkers} (TypeScript through ts-node); builds a `TieredStore` from the JSON
 * options in `COUNTER_WORKER_OPTIONS`, then answers `run` commands over IPC: `increments`
 * concurrent `increment(key)` calls, reported with each call's start and end time.
 */
import type { ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { TieredStore } from '../../lib/store/tiered-store';
import type { TieredStoreOptions } from '../../lib/store/tiered-store.options';
import { forkTsWorker, stopWorker } from './ts-worker';

/** What one `run` reports: per call, the value it resolved and when it ran (epoch ms). */
export interface CounterReport {
  values: number[];
  starts: number[];
  ends: number[];
  errors: string[];
}

/** Epoch ms with sub-millisecond precision, comparable between processes of one machine. */
export const epochMs = (): number => performance.timeOrigin + performance.now();

/** A worker process, seen from the test. */
export class CounterWorker {
  constructor(private readonly child: ChildProcess) {}

  /** Runs `increments` concurrent increments of `key` in the worker. */
  run(key: string, increments: number): Promise<CounterReport> {
    return new Promise((resolve, reject) => {
      const onMessage = (m: { type: string; report?: CounterReport; message?: string }) => {
        if (m.type === 'done') resolve(m.report!);
        else if (m.type === 'error') reject(new Error(m.message));
        else return;
        this.child.off('message', onMessage);
      };
      this.child.on('message', onMessage);
      this.child.send({ cmd: 'run', key, increments });
    });
  }

  close(): Promise<void> {
    return stopWorker(this.child, () => this.child.send({ cmd: 'exit' }));
  }
}

/** Forks `n` workers over a store built from `options` (JSON: no clock, no tier objects). */
export function startCounterWorkers(
  n: number,
  options: TieredStoreOptions,
): Promise<CounterWorker[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const child = await forkTsWorker(
        'counter-worker.ts',
        { COUNTER_WORKER_OPTIONS: JSON.stringify(options) },
        'counter worker',
      );
      return new CounterWorker(child);
    }),
  );
}

async function main(): Promise<void> {
  const send = (message: unknown) => process.send?.(message);
  try {
    const store = new TieredStore(
      JSON.parse(process.env.COUNTER_WORKER_OPTIONS!) as TieredStoreOptions,
    );
    await store.connect({ failFast: true });
    process.on('message', (cmd: { cmd: string; key: string; increments: number }) => {
      if (cmd.cmd === 'exit') {
        void store.disconnect().then(() => process.exit(0));
        return;
      }
      const report: CounterReport = { values: [], starts: [], ends: [], errors: [] };
      void Promise.all(
        Array.from({ length: cmd.increments }, async () => {
          const start = epochMs();
          try {
            const value = await store.increment(cmd.key, 1);
            report.values.push(value);
            report.starts.push(start);
            report.ends.push(epochMs());
          } catch (err) {
            report.errors.push(err instanceof Error ? err.message : String(err));
          }
        }),
      ).then(() => send({ type: 'done', report }));
    });
    send({ type: 'ready' });
  } catch (err) {
    send({ type: 'error', message: err instanceof Error ? err.stack : String(err) });
    process.exit(1);
  }
}

// Run as a worker when forked; a plain import (from a test) only gets the helpers above.
if (process.env.COUNTER_WORKER_OPTIONS !== undefined && process.send !== undefined) void main();
