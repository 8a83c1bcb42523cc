/**
 * One app instance in its own Node process, for the cross-process herd tests and the stampede
 * benchmark. Started by `herd-processes.ts` (`fork`, TypeScript through ts-node); boots
 * `TieredCacheModule.forRoot(config)` in a Nest application context and answers commands over
 * IPC. Each `run` fires `callers` concurrent reads of one key and reports what happened.
 */
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createCache } from 'cache-manager';
import { setTimeout as sleep } from 'node:timers/promises';
import { TieredCache, TieredCacheModule, createTieredKeyv } from '../../lib';
import type { RunCommand, RunReport, WorkerConfig } from './herd-processes';

const config = JSON.parse(process.env.HERD_WORKER_CONFIG ?? '{}') as WorkerConfig;

@Module({ imports: [TieredCacheModule.forRoot({ ...config, logErrors: false })] })
class WorkerModule {}

function send(message: unknown): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  const app = await NestFactory.createApplicationContext(WorkerModule, { logger: false });
  const cache = app.get(TieredCache);
  const wrapped = createCache({ stores: [createTieredKeyv(cache.store)] });

  async function run(cmd: RunCommand): Promise<RunReport> {
    let calls = 0;
    const factory = async () => {
      calls++;
      send({ type: 'computing' });
      if (cmd.hang) await new Promise(() => undefined);
      await sleep(cmd.delayMs);
      return { computedBy: process.pid, call: calls };
    };
    const read = async (): Promise<{ value: unknown; status: string }> => {
      switch (cmd.mode ?? 'ours') {
        case 'ours':
          return cache.lookup(cmd.key, factory, { ttl: cmd.ttl, ...cmd.herd });
        case 'wrap':
          return { value: await wrapped.wrap(cmd.key, factory, cmd.ttl), status: '?' };
        case 'none': {
          const hit = await cache.get(cmd.key);
          if (hit !== undefined) return { value: hit, status: 'HIT' };
          const value = await factory();
          await cache.set(cmd.key, value, cmd.ttl);
          return { value, status: 'MISS' };
        }
      }
    };
    const latencies: number[] = [];
    const statuses: Record<string, number> = {};
    const values = new Set<string>();
    const errors: string[] = [];
    await Promise.all(
      Array.from({ length: cmd.callers }, async () => {
        const t0 = performance.now();
        try {
          const { value, status } = await read();
          statuses[status] = (statuses[status] ?? 0) + 1;
          values.add(JSON.stringify(value));
        } catch (err) {
          errors.push(err instanceof Error ? err.message : String(err));
        }
        latencies.push(performance.now() - t0);
      }),
    );
    return {
      type: 'done',
      pid: process.pid,
      calls,
      statuses,
      values: [...values],
      errors,
      latencies,
    };
  }

  process.on('message', (cmd: RunCommand | { cmd: 'exit' }) => {
    if (cmd.cmd === 'exit') {
      void app.close().then(() => process.exit(0));
      return;
    }
    void run(cmd).then(send, (err: unknown) => send({ type: 'error', message: String(err) }));
  });
  send({ type: 'ready' });
}

main().catch((err: unknown) => {
  send({ type: 'error', message: err instanceof Error ? err.stack : String(err) });
  process.exit(1);
});
